# Fresh Linux machine with Python 3.11, no GPU. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data

.PHONY: setup demo test lint browser bench-encode clean

setup: $(VENV)/.installed

# torch goes in first as the local CPU build; an unpinned torch would pull a several-GB CUDA build.
$(VENV)/.installed: pyproject.toml bench/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]' -e bench
	touch $@

# Index the demo corpus (docstrings of the installed Python standard library) with the embedded splade-tiny,
# then search it with the safe exact method, BMP and Seismic.
demo: setup
	$(BIN)/lsr sample-corpus $(DATA)/sample.jsonl
	$(BIN)/lsr index $(DATA)/sample.jsonl --output $(DATA)/sample-index --method exact --method bmp --method seismic --overwrite
	$(BIN)/lsr search --index $(DATA)/sample-index "read a JSON file" -k 5
	$(BIN)/lsr search --index $(DATA)/sample-index "compress a folder into a zip archive" -k 5 --method bmp
	$(BIN)/lsr search --index $(DATA)/sample-index "parse command line arguments" -k 5 --method seismic
	@echo "serve it: $(BIN)/lsr serve --index $(DATA)/sample-index  (then open http://127.0.0.1:8000/docs)"

# Two workers, each test file kept on one (its module fixtures shared): on CI's 2 cores 8.4 min against 15 serial.
TEST_WORKERS ?= 2
test: setup lint browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# The search page's test drives Debian's chromium headless; installed here where apt can (root on Debian), else that
# one test is skipped with the reason.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	     apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium not installed: the search page test will be skipped"; }

# The layers of pyproject.toml's [tool.importlinter], checked on the built wheel: what ships. (A bare `lint-imports`
# in the repository checks the sources, where lsr/index, lsr/service, lsr/eval and lsr/cluster link to the folders.)
lint: setup
	rm -rf build/lint && $(BIN)/pip wheel -q --no-deps -w build/lint . && \
	  $(BIN)/python -m zipfile -e build/lint/lsr-*.whl build/lint/site
	$(BIN)/python -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('build/lint/lsr-*.whl')[0]).namelist(); \
	  bad = [n for n in names if n.split('/')[0] != 'lsr' and '.dist-info/' not in n]; sys.exit(f'not lsr/: {bad}' if bad else 0)"
	$(BIN)/python -c "import sys, zipfile, glob; names = set(zipfile.ZipFile(glob.glob('build/lint/lsr-*.whl')[0]).namelist()); \
	  page = {f'lsr/service/static/{f}' for f in ('index.html', 'app.js', 'style.css')}; \
	  sys.exit(f'the search page is not in the wheel: {sorted(page - names)}' if page - names else 0)"
	cd build/lint/site && PYTHONPATH=. $(abspath $(BIN))/lint-imports --config $(abspath pyproject.toml)

bench-encode: setup
	$(BIN)/lsr bench encode --dataset beir/scifact --queries beir/scifact/test

clean:
	rm -rf $(DATA) .pytest_cache
