# bnnflow: `make setup` once, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bnnflow-setup

.PHONY: setup test test-slow lint format bench clean

setup: $(STAMP)

# torch 2.13.0 first so that nothing else can pull a CUDA build; finn-plus with --no-deps because it
# pins brevitas 0.13.0, which conflicts with that torch (pyproject.toml explains the choice).
$(STAMP): pyproject.toml requirements/finn-plus.txt requirements/tools.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 'setuptools>=70,<81'
	$(BIN)/pip install --quiet -r requirements/finn-plus.txt
	$(BIN)/pip install --quiet --no-deps finn-plus==1.6.1
	$(BIN)/pip install --quiet -r requirements/tools.txt
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/bnnflow --version
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bnnflow training dataflow hw sim

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/train_accuracy.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
