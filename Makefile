# One runner for install, dev server, lint, tests and benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install dev test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

## Install, then start a dev server (SQLite in a temp dir, unsealed, NOT for production).
dev: install
	$(BIN)/sikker server --dev $(ARGS)

## Install, then run the whole test suite (needs the local PostgreSQL; see README).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

## Install, then measure signed machine reads with audit ON vs STUBBED (needs wrk; ~2 min).
## The audit list benchmark has its own command: $(BIN)/python bench/audit_list.py (see docs/performance.md).
bench: install
	$(BIN)/python bench/signed_reads.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
