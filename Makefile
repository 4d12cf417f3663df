# imagingdb: make demo | make test | make fuzz | make bench | make bench-scale | make zipapp
# Every target creates the virtual environment (.venv) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=
FUZZ_COUNT ?= 5000
FUZZ_SEED  ?= $(shell date +%s)

.PHONY: demo test fuzz bench bench-scale install clean zipapp zipapp-lock zipapp-bench

# The plugins under plugins/ are installed too: the suite tests them installed, for real.
$(STAMP): pyproject.toml setup.py imagingdb/_qc.c plugins/imagingdb-ndtiff/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e plugins/imagingdb-ndtiff
	touch $(STAMP)

install: $(STAMP)

# build/demo is make demo's own folder: emptied first, whatever an older demo left there.
demo: $(STAMP)
	rm -rf build/demo
	$(BIN)/imagingdb demo --dir build/demo

test: $(STAMP)
	$(BIN)/ruff check imagingdb tests plugins docs/example-plugin scripts bench
	$(BIN)/python -m pytest -q -n auto $(PYTEST_ARGS)

# Mutated TIFFs against every splitter, longer than make test's bounded run.
# Reproduce a failure with: $(BIN)/python -m tests.fuzz_readers --seed S --case N
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz_readers --count $(FUZZ_COUNT) --seed $(FUZZ_SEED) --keep build/fuzz-failures

# dist/imagingdb: one executable file (shiv zipapp) of the project and the exact versions
# in requirements/zipapp.lock; see README "Install as one file". Cached in build/zipapp-cache
# by a hash of its inputs (the tests use the same build).
zipapp: $(STAMP)
	$(BIN)/python scripts/build_zipapp.py --output dist/imagingdb

# Start-up figures of the zipapp (first run, concurrent first runs, --help once unpacked).
zipapp-bench: $(STAMP)
	$(BIN)/python scripts/time_zipapp.py

# Re-resolve the zipapp's dependencies (needs the package index); commit the result.
zipapp-lock: $(STAMP)
	$(BIN)/python scripts/lock_zipapp.py

# Figures of SPEC section 9, each with the limit measured in the same run; data is
# generated once under build/bench/data. BENCH_ARGS="--repeat 5" for steadier medians.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Look-ups and scans over catalogues of 1,000, 10,000 and 100,000 datasets (100 frame rows
# each) on SQLite and PostgreSQL, growth checked; see docs/performance.md "At lab scale".
# SQLite catalogues are cached under build/bench-scale. SCALE_ARGS="--databases sqlite".
SCALE_ARGS ?=
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

clean:
	rm -rf build dist .pytest_cache *.egg-info
