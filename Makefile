# perfkit — `make help` lists the targets. The two that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= data/demo.duckdb
PARAMS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install system-deps demo run test lint lab bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,spark]'
	$(BIN)/python -c 'from kit.ingest.clf_fast import warm_up; warm_up()'   # compile the log reader once
	@touch $(STAMP)

install: $(STAMP) ## create .venv (when missing) and install the kit with its dev tools

system-deps: ## install the missing Debian packages the tests use (as root), or print the command and stop
	@$(PYTHON) tests/system_deps.py --install

$(DB): $(wildcard kit/demo/*.py) | $(STAMP)
	$(BIN)/perfkit demo --db $(DB)

demo: $(DB) ## build the seeded demo warehouse (data/demo.duckdb)

run: $(STAMP) $(DB) ## build the demo if missing, run every notebook, write reports and documents to outputs/
	$(BIN)/perfkit run --db $(DB) $(if $(PARAMS),--params $(PARAMS))

# system-deps first: a missing tool stops the run before the venv is built. lint runs here, so `make test`
# gives the same verdict as CI, which runs just this target (.ci/run).
test: system-deps lint ## lint, then the whole suite: unit, real services (PostgreSQL, Prometheus, nginx, Chromium), notebooks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check kit tests benchmarks
	$(BIN)/mypy kit

lab: $(STAMP) $(DB) ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP) ## benchmarks: demo build and full run, ingest, KPIs, cache simulation, findings, optimizations, engines (ratios vs baselines)
	@$(PYTHON) tests/system_deps.py --install --for bench
	$(BIN)/python benchmarks/bench_run.py
	@for b in benchmarks/bench_ingest.py benchmarks/bench_db_ingest.py benchmarks/bench_kpis.py \
	  benchmarks/bench_cache.py benchmarks/bench_findings.py benchmarks/bench_optimizations.py \
	  benchmarks/bench_engines.py; do \
	  if test -f $$b; then $(BIN)/python $$b || exit 1; fi; done

clean: ## remove outputs and the demo warehouse (keeps .venv)
	rm -rf outputs/runs outputs/latest outputs/reports outputs/strategy outputs/results outputs/notebooks $(DB)
