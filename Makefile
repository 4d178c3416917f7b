# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_RUN  := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools>=77' wheel

$(STAMP_RUN): pyproject.toml lorac/scan/_native.c | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP_RUN)

# torch (CPU build), safetensors and transformers let the tests write and read a --tiny
# synthetic checkpoint set; they are test tools here, not dependencies of lorac.
$(STAMP_TEST): pyproject.toml lorac/scan/_native.c | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,report]'
	$(BIN)/python -m pip install -q torch==2.13.0 safetensors 'transformers>=4.44,<5'
	@# the browser test needs Debian's chromium: installed here when missing and we are root
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $(STAMP_RUN) $(STAMP_TEST)

demo: $(STAMP_RUN)
	$(BIN)/lorac lint profiles/
	$(BIN)/lorac build final --backend kohya
	@echo
	@echo "Compiled files are in build/final/ — launch with: bash build/final/train.sh"

test: $(STAMP_TEST)
	$(BIN)/python -m pytest -q

lint: $(STAMP_TEST)
	$(BIN)/ruff check lorac tests bench scripts

bench: $(STAMP_TEST)
	$(BIN)/python bench/lint_speed.py
	$(BIN)/python bench/dataset_scan.py

clean:
	rm -rf build dist .lorac_cache .pytest_cache
