"""Triton kernels (GPU, or the CPU under ``TRITON_INTERPRET=1``). Importing a module here needs triton."""
