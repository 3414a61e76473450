# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint format migrate seed bench bench-smoke bench-tools clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

.env:
	@echo "Writing .env with a generated DJANGO_SECRET_KEY (local development only)"
	@$(PY) -c "import secrets; print('DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50)); print('DJANGO_DEBUG=1')" > .env

migrate: install .env
	$(PY) manage.py migrate --noinput

# Serves admin and dashboard with daphne (ASGI: HTTP + WebSockets) on $(HOST):$(PORT); the
# Discord bot starts in the same process when DISCORD_TOKEN is set.
run: migrate
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: install
	DJANGO_TESTING=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	DJANGO_TESTING=1 $(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

seed: migrate
	$(PY) manage.py seed_demo

# Every benchmark in bench/ at full size: one JSON line per figure (value, same-run baseline,
# ratio, commit, load average) in bench/results/<commit>.jsonl, and a table; docs/performance.md.
# PostgreSQL and Redis from BENCH_DATABASE_URL / DATABASE_URL and BENCH_REDIS_URL / REDIS_URL;
# the benchmarks create their own databases beside the one named (bench/_common.py).
bench: install bench-tools
	$(PY) bench/run.py

# Every benchmark at toy size (seconds each; the soak about 2 minutes), as CI runs it: fails on a
# crash, a lost delivery or interaction, or an unclean ledger audit; never on time.
bench-smoke: install bench-tools
	$(PY) bench/run.py --smoke

# pgbench (the same-run baseline of trade_throughput) comes with PostgreSQL's client tools.
bench-tools:
	@command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 \
	  || { echo "installing pgbench (postgresql-client, postgresql-contrib)"; \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	         postgresql-client postgresql-contrib >/dev/null; } \
	  || echo "pgbench is missing and could not be installed: apt-get install postgresql-contrib"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis staticfiles
