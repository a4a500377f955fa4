# The Makefile bootstraps its own virtual environment: on a fresh machine `make corpus` or
# `make test` is all the set-up there is.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

RECIPE  ?= corpus/default.toml
OUT     ?= build/corpus
SOURCES ?=
SEED    ?=
WORKERS ?=

BUILD_ARGS := $(RECIPE) --out $(OUT) $(if $(SOURCES),--sources $(SOURCES)) $(if $(SEED),--seed $(SEED)) $(if $(WORKERS),--workers $(WORKERS))

.PHONY: corpus check test lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11+ is required; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

corpus: $(STAMP)
	$(BIN)/stellar-data build $(BUILD_ARGS)

check: $(STAMP)
	$(BIN)/stellar-data check $(RECIPE) $(if $(SOURCES),--sources $(SOURCES))

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build
