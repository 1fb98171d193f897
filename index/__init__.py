"""The inverted index: memory-mapped segments and the search methods over them (exact, bmp, seismic)."""
