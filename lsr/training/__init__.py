"""Fine-tuning SPLADE models (``lsr train``): data and dev split, hard-negative mining with our BM25 and index,
the contrastive + FLOPS (+ MarginMSE) objective through the fused head, checkpoints that resume, and the output
Hugging Face checkpoint the rest of lsr loads. Above ``lsr.eval`` (it uses its datasets, runs and measures)."""
