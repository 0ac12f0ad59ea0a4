# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: demo test bench install install-test test-servers clean

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

bench: install-test test-servers
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache test-artifacts
