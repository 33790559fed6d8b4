# Every target installs what it needs into .venv first (Python 3.13, as Lambda runs).
# `make local` runs the whole loop against emulated AWS; `make test` is what CI runs.
# PYTHON=/path/to/python3.13 overrides the search (python3.13 on PATH, then pyenv's 3.13);
# either way scripts/find-python.sh checks it is 3.13 and prints what to do if none is.
PYTHON ?=
PYTHON313 = $(shell PYTHON='$(PYTHON)' sh scripts/find-python.sh 3.13)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DIR ?= ../shared
export SALEOR_SHARED_DIR ?= $(abspath $(SHARED_DIR))

.PHONY: help venv local test unit lint build checkov bench backtest loadtest mutate fuzz clean

help:
	@echo "make local     run retrain + predict against emulated AWS on a real trace, then the backtest report"
	@echo "make test      lint, templates, sam build, every test, checkov (what CI runs)"
	@echo "make unit      the quick tests only"
	@echo "make fuzz      the hostile-input harness with 20x CI's examples, random (tests/fuzz)"
	@echo "make bench     cold start, sizes, retrain time and memory, backtest of every shared trace"
	@echo "make backtest  ARGS='--trace nasa' the backtest command"
	@echo "make loadtest  STACK=name SHAPE=trace  Locust against a deployed stack's ALB"
	@echo "make mutate    MODULES='policy state' EXCLUDE='fn ...'  mutation score per module (not in make test)"

# venv --clear: a .venv of an older Python (3.11, before the runtime moved) is replaced, not reused.
$(STAMP): requirements-dev.txt layers/sklearn/requirements.txt src/layer-requirements.txt pyproject.toml
	@python="$(PYTHON313)"; test -n "$$python" || { echo "need Python 3.13 (Lambda's python3.13 runtime)"; exit 1; }; \
		echo "$$python -m venv --clear $(VENV)"; "$$python" -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e .
	touch $(STAMP)

venv: $(STAMP)

local: $(STAMP)
	$(BIN)/python -m saleor_scaling.local.run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml infra-cfn/*.yaml
	$(BIN)/sam validate --lint

build: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam build

checkov:
	bash scripts/checkov.sh

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test: lint build
	$(BIN)/python -m pytest -q
	$(MAKE) checkov

# CI runs the same harness derandomized with a few hundred examples (tests/fuzz/profiles.py).
fuzz: $(STAMP)
	SALEOR_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q -s tests/fuzz/test_hostile_inputs.py

bench: build
	$(BIN)/python -m saleor_scaling.bench $(ARGS)

backtest: $(STAMP)
	$(BIN)/python -m saleor_scaling.backtest $(ARGS)

loadtest: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash loadtest/run.sh $(STACK) $(SHAPE)

# Mutation testing (mutmut, from .venv/mutate) in a scratch copy; report in reports/mutation/.
# Fails below THRESHOLD %; MODULES defaults to [tool.saleor-mutate] in pyproject.toml.
mutate: $(STAMP)
	bash scripts/mutate.sh --modules "$(MODULES)" --exclude "$(EXCLUDE)" \
		$(if $(THRESHOLD),--threshold $(THRESHOLD)) $(ARGS)

clean:
	rm -rf .aws-sam reports out .pytest_cache .mypy_cache .ruff_cache
