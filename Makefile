# bnnflow: `make setup` once, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bnnflow-setup

.PHONY: setup system-packages test test-fast test-slow lint format bench bench-sweep clean

setup: $(STAMP)

# Debian packages: liblz4-dev lets Verilator write FST waveforms (`bnnflow sim --trace`). Best effort: without
# root or apt, everything but tracing still works.
system-packages:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  dpkg -s liblz4-dev >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq liblz4-dev >/dev/null) \
	  || echo "warning: could not install liblz4-dev; FST tracing will be unavailable"; \
	else echo "note: install liblz4-dev (Debian) for FST waveforms"; fi

# torch 2.13.0 first so that nothing else can pull a CUDA build; finn-plus with --no-deps because it
# pins brevitas 0.13.0, which conflicts with that torch (pyproject.toml explains the choice).
$(STAMP): pyproject.toml requirements/finn-plus.txt requirements/tools.txt
	$(MAKE) system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 'setuptools>=70,<81'
	$(BIN)/pip install --quiet -r requirements/finn-plus.txt
	$(BIN)/pip install --quiet --no-deps finn-plus==1.6.1
	$(BIN)/pip install --quiet -r requirements/tools.txt
	# Only the open ap_types headers inside hls4ml are used (FINN cppsim with g++); its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps hls4ml==1.3.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/bnnflow --version
	touch $(STAMP)

# Tests in tiers: test-fast (unit tier, under 2 minutes), test (everything but `slow`, under 15 minutes on 2 cores;
# CI runs it), test-slow (the rest: LFC/CNV builds, more foldings, longer property runs; about 21 minutes; CI runs it too).
# pytest-xdist runs the tests on every core (at most 4 workers: each FINN build holds a few GB).
XDIST := -n auto --maxprocesses 4

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m unit -q

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q $(XDIST) --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q $(XDIST) --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bnnflow training dataflow hw sim

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/train_accuracy.py
	$(BIN)/python benchmarks/rtl_mnist.py

# The 24-point design-space sweep on the embedded Dask cluster and serially, then its report (about 45 min).
bench-sweep: $(STAMP)
	$(BIN)/python benchmarks/sweep.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
