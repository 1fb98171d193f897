# Fresh Linux machine with Python 3.11, no GPU. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data

.PHONY: setup demo test bench-encode clean

setup: $(VENV)/.installed

# torch goes in first as the local CPU build; an unpinned torch would pull a several-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Encode the demo corpus (docstrings of the installed Python standard library) with the embedded splade-tiny.
demo: setup
	$(BIN)/lsr sample-corpus $(DATA)/sample.jsonl
	$(BIN)/lsr encode $(DATA)/sample.jsonl --output $(DATA)/sample.npz

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-encode: setup
	$(BIN)/lsr bench encode --dataset beir/scifact --queries beir/scifact/test

clean:
	rm -rf $(DATA) .pytest_cache
