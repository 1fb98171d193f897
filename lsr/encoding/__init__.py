"""Text to sparse vectors: model lookup (``models``), the SPLADE head (``head``, ``kernels``) and the ``Encoder``."""
