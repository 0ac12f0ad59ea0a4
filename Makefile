# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-at bench install install-test test-servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Tests and benchmarks start private Mosquitto and InfluxDB instances from Debian's packages.
test-servers:
	@bash .ci/install-test-servers

demo: install
	$(BIN)/smartwater demo $(ARGS)

test: install-test test-servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit layer only: no broker, no database server, no browser (tests marked `unit`).
test-fast: install-test
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

# The whole suite with every process's clock shifted to start at AT (docs/testing.md), e.g.
#   make test-at AT='2027-01-01 00:20 +0800'
# One offset for all processes (libfaketime's "+Ns"), so a test and the servers it starts agree on the time.
test-at: install-test test-servers
	@test -n "$(AT)" || { echo "usage: make test-at AT='2027-01-01 00:20 +0800'" >&2; exit 2; }
	off=$$(( $$(date -d "$(AT)" +%s) - $$(date +%s) )); \
	PYTHONPATH=$(CURDIR)/.ci/faketime FAKETIME_DONT_FAKE_MONOTONIC=1 \
	faketime -f "$$(printf '%+d' $$off)s" $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test test-servers
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache test-artifacts
