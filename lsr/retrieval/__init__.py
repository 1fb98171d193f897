"""Retrieval beside the learned model, shared by the service and the evaluation: a text analyzer, BM25 as sparse
vectors in the same index (``bm25``), and rank fusion (``fusion``)."""
