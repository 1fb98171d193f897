"""Which encoder a process loads for text queries: the numpy ``QueryEncoder`` where it covers the model (no torch,
no transformers in the process), else the torch ``Encoder``."""

from __future__ import annotations

import logging

from lsr.encoding.models import DEFAULT_MODEL
from lsr.encoding.query import QueryEncoder, Unsupported

log = logging.getLogger(__name__)


def load_query_encoder(name_or_path: str = DEFAULT_MODEL, *, threads: int | None = None, **options):
    """The numpy ``QueryEncoder`` where it covers the model, else the torch ``Encoder`` (on the CPU) with a log line
    saying why. Both offer ``encode_queries``, ``encode_documents``, ``vocab_size``, ``vocab_fingerprint``,
    ``tokenizer`` and ``stats``."""
    try:
        return QueryEncoder.from_pretrained(name_or_path, threads=threads, **options)
    except Unsupported as e:
        log.info("queries of %s are encoded with torch: %s", name_or_path, e)
    import torch
    from transformers.utils import logging as transformers_logging

    from lsr.encoding.encoder import Encoder

    transformers_logging.disable_progress_bar()   # a process that answers queries prints no "Loading weights" bar
    if threads is not None:
        torch.set_num_threads(threads)
    return Encoder.from_pretrained(name_or_path, device="cpu", **options)
