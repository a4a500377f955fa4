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

CONFIG ?=

BENCH_SOURCES ?= ../shared/sources
BENCH_SIZES   ?=
BENCH_REPEATS ?= 3
BENCH_STAMP   := $(VENV)/.installed-bench

.PHONY: corpus check test lint clean train bench-train bench bench-gpu

# torch is pinned first: on a CPU machine `torch==2.13.0` is the local CPU wheel, while an
# unpinned torch (asked for by transformers or peft) would pull several GB of CUDA packages.
TORCH ?= torch==2.13.0

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11+ is required; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $(STAMP)

corpus: $(STAMP)
	$(BIN)/stellar-data build $(BUILD_ARGS)

check: $(STAMP)
	$(BIN)/stellar-data check $(RECIPE) $(if $(SOURCES),--sources $(SOURCES))

test: $(STAMP)
	$(BIN)/python -m pytest

train: $(STAMP)
	@test -n "$(CONFIG)" || { echo "usage: make train CONFIG=path/to/config.toml"; exit 2; }
	$(BIN)/stellar-train train $(CONFIG)

# The trainer's data pipeline on CPU (non-pad share, samples/s for random, grouped and packed batches)
# on the real corpus when ../shared/sources is there, else on the embedded samples.
bench-train: $(STAMP)
	@if [ -d "$(BENCH_SOURCES)" ]; then \
	  $(BIN)/stellar-data build corpus/stellarspeak.toml --sources $(BENCH_SOURCES) --out build/bench/corpus; \
	else \
	  echo "note: $(BENCH_SOURCES) not found, measuring the embedded samples"; \
	  $(BIN)/stellar-data build corpus/default.toml --out build/bench/corpus; \
	fi
	$(BIN)/python bench/train_pipeline.py build/bench/corpus --out build/bench/train_pipeline.json

# Corpus build throughput and peak memory (whole process tree), ours vs a naive script vs datatrove, at
# 100k and 1M synthetic records (BENCH_SIZES=100000 for one size), each tool run BENCH_REPEATS times
# (median reported): build/bench/results.json and
# docs/bench_time_vs_n.png. Installs the `bench` extra (datatrove, psutil) into the venv once.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --repeats $(BENCH_REPEATS) $(if $(BENCH_SIZES),--sizes $(BENCH_SIZES))

# LoRA checks and throughput on one GPU (H100/H200), in at most GPU_BUDGET_S seconds: packed vs padded loss
# (sdpa, eager, a varlen kernel), bs4xGA1 vs bs1xGA4, tokens/s, MFU and peak memory for random-init LLaMA-2
# 7B/13B shapes. It uses the GPU machine's own Python and PyTorch stack (torch, transformers, peft, accelerate;
# no venv, no network): copy the tree there and, in its root, run
#   python bench/gpu_check.py --out build/gpu_check.json --budget-s 300
# (or `make bench-gpu GPU_PYTHON=python3`). Writes build/gpu_check.json and build/gpu_check.md (the table for
# docs/BENCHMARKS.md), rewritten after every measurement. Without a GPU: `make bench-gpu GPU_CHECK_ARGS=--tiny`.
GPU_PYTHON     ?= python3
GPU_BUDGET_S   ?= 300
GPU_CHECK_ARGS ?=

bench-gpu:
	PYTHONPATH=. $(GPU_PYTHON) bench/gpu_check.py --out build/gpu_check.json --budget-s $(GPU_BUDGET_S) $(GPU_CHECK_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build
