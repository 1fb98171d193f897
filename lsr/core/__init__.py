"""The bottom layer: sparse vectors (CSR), documents, corpus readers, vector files, crash-safe writes, errors and
argument checks. It imports nothing of lsr above it, and neither torch nor a web stack."""
