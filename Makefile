# Stormwatch: `make demo` and `make test` work from a fresh clone with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Members train two at a time: OpenMP threads must not spin while they wait (see flows/cli/__init__.py).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test bench lint serve clean

# Reinstall whenever pyproject.toml changes; the stamp records a finished install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/stormwatch demo

test: $(STAMP)
	$(BIN)/ruff check market memory monitors models flows tests benchmarks
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check market memory monitors models flows tests benchmarks

# A Prefect server on 127.0.0.1:4200 (state in STORMWATCH_HOME/prefect) with the deployments, the
# alerts and a worker; Ctrl-C stops everything it started (flows/serve.py).
serve: $(STAMP)
	$(BIN)/stormwatch serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
