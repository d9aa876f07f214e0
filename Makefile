# The two commands a newcomer needs:  make run   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv system-deps bench lint typecheck clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Debian packages the test suite drives for real: Prometheus/promtool and headless Chromium.
system-deps:
	@./scripts/system-deps

## Run the service on its embedded default (SQLite, local cache, filesystem broker) or on
## DATABASE_URL/REDIS_URL when set: migrate, demo users, demo cohort, model, worker, beat, web.
run: venv
	./scripts/run --host $(HOST) --port $(PORT)

## Run the whole test suite (PostgreSQL and Redis when DATABASE_URL/REDIS_URL are set) in TEST_WORKERS processes;
## worker N uses Redis database <REDIS_URL's> + N (tests/parallel.py). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: venv system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

## Static types of the project's packages (mypy with the Django and DRF stubs; settings in pyproject.toml).
typecheck: venv
	$(VENV)/bin/mypy

## Every benchmark with its baseline, then README.md's performance table from bench/results/
## (make bench BENCH_ARGS=--quick for a few minutes' run; BENCH_ARGS="--only bench_auc" for one).
bench: venv
	$(PY) -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var db.sqlite3
