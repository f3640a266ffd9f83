# streamdash developer entry points. Everything runs from the repo's .venv.
#   make run    install, then a local demo (daphne on http://127.0.0.1:8000, prints URL + login)
#   make test   the full CI pipeline (.ci/run)
#   make lint   ruff, mypy --strict on the SDK, mypy with django-stubs on the server
#   make bench  a benchmark (BENCH=append by default) on a throwaway PostgreSQL
SHELL := /bin/bash
PY := .venv/bin/python
BENCH ?= append
BENCH_ARGS ?=

.PHONY: install run test lint bench

install:
	bash .ci/install.sh

# A missing venv is created by the installer.
$(PY):
	bash .ci/install.sh

run: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py demo

test:
	bash .ci/run

lint: $(PY)
	.venv/bin/ruff check .
	@if [ -d streamdash/sdk ] && find streamdash/sdk -name '*.py' -size +0c -print -quit | grep -q .; then \
		echo ".venv/bin/mypy --config-file= --python-version 3.11 --strict streamdash/sdk"; \
		.venv/bin/mypy --config-file= --python-version 3.11 --strict streamdash/sdk; \
	else \
		echo "mypy: skipped (streamdash/sdk has no non-empty .py files)"; \
	fi
	DEBUG=1 .venv/bin/mypy apps streamdash

bench: $(PY)
	bash -c 'set -euo pipefail; \
		source .ci/services.sh; \
		trap stop_services EXIT; trap "exit 130" INT; trap "exit 143" TERM; \
		start_postgres; \
		export DEBUG=1 SECRET_KEY="bench-$$($(PY) -c "import secrets; print(secrets.token_hex(24))")"; \
		$(PY) manage.py migrate --noinput -v 0; \
		$(PY) manage.py streambench $(BENCH) $(BENCH_ARGS)'
