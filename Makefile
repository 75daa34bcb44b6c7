# trajforge — every target first runs `setup` (idempotent; a second or so when nothing changed).
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
TRAJFORGE := $(VENV)/bin/trajforge

# Knobs:  make math LIMIT=50 OUT=runs/math-50     make test PYTEST_ARGS="-k masking"
# OUT, LIMIT and MODEL mean the same for every run target; OUT defaults to runs/<target>.
OUT         ?=
LIMIT       ?=
MODEL       ?=
RUN         ?= runs/demo
TEST_TIMEOUT ?= 900
PYTEST_ARGS ?=
PYTEST      := $(PY) -m pytest -q -p no:cacheprovider --timeout=$(TEST_TIMEOUT)
RUN_FLAGS   := $(if $(LIMIT),--limit $(LIMIT)) $(if $(MODEL),--model $(MODEL))

DOMAINS := code tool-use deep-research agentic-cot

.PHONY: help setup demo math code-starter code-tasks $(DOMAINS) all test test-fast bench train-smoke review clean

help: ## list the targets
	@echo "usage: make TARGET [OUT=dir] [LIMIT=n] [MODEL=path-or-url]"
	@grep -hE '^[a-zA-Z_-]+( [a-zA-Z_-]+)*:.*## ' $(MAKEFILE_LIST) \
	  | sed -E 's/^([^:]+):.*## (.*)/  \1\t\2/' | expand -t 42

setup: ## install/prepare everything (apt, .venv, dockerd, embedded model, sandbox image); idempotent
	@scripts/setup.sh

demo: setup ## small math run on the embedded model -> runs/demo
	$(TRAJFORGE) run math --config configs/demo-math.yaml --out runs/demo

math: setup ## math domain at a configurable size: OUT=runs/math LIMIT=n MODEL=...
	$(TRAJFORGE) run math --config configs/math.yaml --out $(or $(OUT),runs/math) $(RUN_FLAGS)

code tool-use deep-research agentic-cot: setup ## one domain on configs/<domain>.yaml -> runs/<domain> (OUT=, LIMIT=, MODEL=)
	@test -f configs/$@.yaml || { echo "error: domain '$@' is planned, not built yet (no configs/$@.yaml): use \`make math\`" >&2; exit 2; }
	$(TRAJFORGE) run $@ --config configs/$@.yaml --out $(or $(OUT),runs/$@) $(RUN_FLAGS)

CODE_FN_PROJECTS := toolz inflection six semver more-itertools cachetools boltons
CODE_FN_TASKS    := .cache/code/function_tasks-easy

# A fresh clone's first code run builds a few checked tasks itself (minutes); code-tasks builds many.
code: code-starter

code-starter: setup ## the code tasks configs/code.yaml names, a small checked set built on first use (resumable)
	$(PY) -m pipelines.code_starter --config configs/code.yaml

code-tasks: setup ## code-domain tasks (resumable): repo-level bug instances + one-statement function tasks, each checked 3x under the verifier's conditions -> .cache/code/
	$(PY) -m synthesizers.domains.code.instances --out .cache/code/instances --target 200
	@{ test -f $(CODE_FN_TASKS)/function_tasks.parquet && test ! -f $(CODE_FN_TASKS)/starter.json; } || { \
	  $(PY) -m synthesizers.domains.code.function_tasks --out $(CODE_FN_TASKS) --per-project 5 \
	  --statements 1 1 $(foreach p,$(CODE_FN_PROJECTS),--project $(p)) && rm -f $(CODE_FN_TASKS)/starter.json; }
	$(PY) -m pipelines.env_qa .cache/code/instances --function-tasks $(CODE_FN_TASKS)

all: setup ## every built domain under the mixture of configs/all.yaml -> runs/all/shards (OUT=, LIMIT=, MODEL=)
	@$(PY) -m pipelines.code_starter --config configs/code.yaml || \
	  echo "warning: no checked code tasks (above); the mixture goes on and reports code as failed" >&2
	$(TRAJFORGE) run all --config configs/all.yaml --out $(or $(OUT),runs/all) $(RUN_FLAGS)

test: setup ## the whole test suite except GPU tests (what CI runs)
	$(PYTEST) -m "not gpu" $(PYTEST_ARGS)

test-fast: setup ## unit tests only (no Docker, vLLM, Ray, slow or GPU)
	$(PYTEST) -m "not docker and not vllm and not ray and not slow and not gpu" $(PYTEST_ARGS)

bench: setup ## benchmarks -> bench/results/*.json and a summary table (BENCH="sandbox dedupe" picks some)
	$(PY) -m bench.run $(BENCH)

train-smoke: setup ## tiny CPU training run on the shards of RUN (default runs/demo; run `make demo` first)
	@test -f $(RUN)/shards/manifest.json || { echo "error: no shards at $(RUN)/shards: run \`make demo\` first (or pass RUN=dir)" >&2; exit 2; }
	$(TRAJFORGE) train --config configs/train-tiny.yaml --shards $(RUN)/shards --out runs/train-smoke

review: setup ## sample and read the trajectories of RUN (default runs/demo)
	$(TRAJFORGE) review $(RUN)

clean: ## remove run outputs, benchmark results and caches of Python (keeps .venv, model, image)
	rm -rf runs bench/results .pytest_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
