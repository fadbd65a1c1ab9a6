# The two commands a user needs: `make local` and `make test`. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.13; the venv (and `sam build`) use the same interpreter.
# A pyenv shim may exist yet not resolve, so each candidate must actually run as 3.13.
PYTHON ?= $(shell for p in python3.13 $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13 2>/dev/null); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# sam finds python3.13 (for `sam build`) and its own entry point in the venv first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt requirements/runtime.txt
	@test -n "$(PYTHON)" || { printf '%s\n' \
		"Python 3.13 (the Lambda runtime) was not found: no python3.13 on PATH, none under ~/.pyenv/versions/3.13*." \
		"Get it one of these ways, then run this command again:" \
		"  pyenv:  pyenv install 3.13   (https://github.com/pyenv/pyenv)" \
		"  uv:     uv python install 3.13 && make $(MAKECMDGOALS) PYTHON=\"\$$(uv python find 3.13)\"" \
		"  Debian 13 / Ubuntu 24.10+:  sudo apt-get install python3.13 python3.13-venv" \
		"  macOS (Homebrew):           brew install python@3.13" \
		"or point at one you have:  make $(MAKECMDGOALS) PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv with everything the tests and local mode need

# Most of the suite's time is waiting (for the clock, local mode, SDK retries), not CPU: pytest
# runs it in TEST_WORKERS pytest-xdist processes, more than this 2-core machine has cores, handed
# one test at a time so the ones marked `slow` each start at once on a worker of their own
# (tests/conftest.py). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 6

.PHONY: test
test: $(STAMP) ## Run every check: lint, template checks, unit, integration and packaging tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1

.PHONY: unit
unit: $(STAMP) ## Run the unit tests only (fast, no AWS)
	$(BIN)/python -m pytest tests/unit

.PHONY: local
local: $(STAMP) ## Run the whole scheduler on this machine, no AWS account needed
	$(BIN)/python -m local

.PHONY: build
build: $(STAMP) ## sam build (the artifact `sam deploy` uploads)
	$(BIN)/sam build --template template.yaml

.PHONY: lint
lint: $(STAMP) ## Lint and format-check the code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: $(STAMP) ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: diagram
diagram: $(STAMP) ## Redraw Architecture.png from docs/architecture.py (needs Graphviz: apt-get install graphviz)
	@command -v dot >/dev/null || { echo "Graphviz is missing: apt-get install -y graphviz" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet -r requirements/diagram.txt
	cd docs && ../$(BIN)/python architecture.py

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

# Cold starts are measured in a venv holding only what Lambda's runtime has (boto3) and the
# layer's requirements: the dev venv carries awscrt, cryptography etc. that Lambda does not.
$(BENCH_STAMP): requirements/runtime.txt requirements/dev.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements/runtime.txt $$(grep -E '^(boto3|botocore)==' requirements/dev.txt)
	touch $(BENCH_STAMP)

.PHONY: bench
bench: $(STAMP) $(BENCH_STAMP) ## Print the benchmarks' figures (cold-start imports; AWS calls per task; start precision; local mode under load)
	$(BENCH_VENV)/bin/python bench/import_cost.py
	$(BIN)/python bench/aws_calls.py
	$(BIN)/python bench/precision.py
	$(MAKE) --no-print-directory bench-local

# Local mode under load: moto's own CPU per DynamoDB call of a run, then, on both trigger
# backends, 1,000 tasks due at the same second and 10,000 pending tasks scheduled by 16 clients
# (about 10 minutes in all on 2 cores).
.PHONY: bench-local
bench-local: $(STAMP) ## Print local mode's figures: moto's CPU per call, a 1,000-task burst and 10,000 pending tasks, both backends
	@echo "load average: $$(cut -d' ' -f1-3 /proc/loadavg)"
	$(BIN)/python bench/moto_call_cost.py
	$(BIN)/python bench/local_burst.py --backend rules
	$(BIN)/python bench/local_burst.py --backend scheduler
	$(BIN)/python bench/local_capacity.py --backend scheduler
	$(BIN)/python bench/local_capacity.py --backend rules

.PHONY: clean
clean: ## Remove the venv, build output and caches
	rm -rf $(VENV) $(BENCH_VENV) .aws-sam .pytest_cache .ruff_cache
