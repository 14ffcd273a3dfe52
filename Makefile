# Two commands are all the set-up: `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed
REPORT ?= emkit-report

.PHONY: demo test stress bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,plot,parquet,dask]"
	touch $@

demo: $(INSTALLED)
	$(BIN)/emkit demo --output $(REPORT)

test: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 -q

# The property-based tests with fresh random examples, at least 2,000 each (see tests/conftest.py).
stress: $(INSTALLED)
	EMKIT_STRESS=1 $(BIN)/python -m pytest -n 2 -q

lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks

$(BENCH_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(BENCH_INSTALLED)
	$(BIN)/python benchmarks/gmm.py
	$(BIN)/python benchmarks/missing.py
	$(BIN)/python benchmarks/hmm.py
	$(BIN)/python benchmarks/dmm.py
	$(BIN)/python benchmarks/signals.py
	$(BIN)/python benchmarks/fixed_mixture.py
	$(BIN)/python benchmarks/dask_overhead.py

clean:
	rm -rf $(VENV) $(REPORT) .pytest_cache
