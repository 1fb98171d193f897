"""Offline evaluation: test collections (ir_datasets ids, BEIR folders), cached vectors, runs, measures, BM25,
hybrid fusion and reports. Each submodule is one concept; ``eval.fusion`` and ``eval.bm25`` need neither
ir_datasets nor the index, so the service imports them too."""
