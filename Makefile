# portald: `make run` (demo on the embedded PostgreSQL) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.toml

.PHONY: install run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/portald --config $(CONFIG) demo
	exec $(BIN)/portald --config $(CONFIG) run --mail-catcher

# Two processes, each with its own private PostgreSQL: the suite waits on servers more than it
# computes, so on two cores it takes about two thirds of the time. On a server given by
# PORTALD_TEST_DSN the two would migrate side by side and race to create its role: one then.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(PORTALD_TEST_DSN),,-n 2)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info test-output
