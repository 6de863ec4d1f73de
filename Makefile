# Duet: `make run` starts Duet on embedded defaults; `make test` installs what it needs and runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export DUET_HOME ?= $(CURDIR)/var
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench venv chromium postgres clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/duet migrate
	$(VENV)/bin/duet demo
	exec $(VENV)/bin/duet serve

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The local PostgreSQL (127.0.0.1:5432, database `test`), started if installed but not running.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2; }
	@pg_isready -h 127.0.0.1 -p 5432

lint: $(STAMP)
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/mypy

test: $(STAMP) chromium postgres lint
	DUET_TEST_POSTGRES=$${DUET_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test} \
	  $(VENV)/bin/pytest -q -p no:cacheprovider --durations=10

bench: $(STAMP)
	$(VENV)/bin/python -m bench.relay_bench
	$(VENV)/bin/python -m bench.packet_profile
	$(VENV)/bin/python -m bench.allocation_bench
	$(VENV)/bin/python -m bench.sealing_bench
	$(VENV)/bin/python -m bench.recorder_bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
