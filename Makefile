# imagingdb: make demo | make test | make bench | make zipapp
# Every target creates the virtual environment (.venv) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test bench install clean

# The plugins under plugins/ are installed too: the suite tests them installed, for real.
$(STAMP): pyproject.toml plugins/imagingdb-ndtiff/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e plugins/imagingdb-ndtiff
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m imagingdb.demo

test: $(STAMP)
	$(BIN)/ruff check imagingdb tests plugins docs/example-plugin
	$(BIN)/python -m pytest -q -n auto $(PYTEST_ARGS)

clean:
	rm -rf build dist .pytest_cache *.egg-info
