# imagingdb: make demo | make test | make bench | make zipapp
# Every target creates the virtual environment (.venv) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m imagingdb.demo

test: $(STAMP)
	$(BIN)/ruff check imagingdb tests
	$(BIN)/python -m pytest -q -n auto $(PYTEST_ARGS)

# Figures of SPEC section 9, each with the limit measured in the same run; data is
# generated once under build/bench/data. BENCH_ARGS="--repeat 5" for steadier medians.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist .pytest_cache *.egg-info
