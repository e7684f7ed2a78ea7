# Two commands on a fresh clone: `make demo` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cnnbench-installed
PYTEST_ARGS ?=
# The default suite runs in parallel, one worker per CPU up to 4 (pytest-xdist; a file's tests on
# one worker, so that its module fixtures are built once); the slow suite runs serially.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(4, os.cpu_count() or 1))')

.PHONY: setup demo test test-slow test-all lint bench bench-gate clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/cnnbench compare resnet50 se_resnet50 ghostnet --out reports --format table,md,csv,html,json

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check cnnbench tests benchmarks
	$(VENV)/bin/ruff format --check cnnbench tests benchmarks
	$(VENV)/bin/mypy cnnbench

bench: setup
	$(PY) benchmarks/bench_static.py
	$(PY) benchmarks/bench_runtime.py

bench-gate: setup
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_calibration.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_gate.py --only aa,slow10,slow5,det
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_gate.py --only check --out benchmarks/results/gate-check.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .benchmarks *.egg-info
