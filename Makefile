# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision are pinned here only to the builds this project is tested
# with; pyproject.toml keeps open ranges (torch>=2.4).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-fast lint demo bench clean help

help:
	@echo "make install  create $(VENV) and install avprep/avmodels with dev+dask extras"
	@echo "make test     ruff + pytest (creates the environment if needed)"
	@echo "make test-fast  ruff + the tests not marked slow (a couple of minutes)"
	@echo "make demo     the whole chain on the synthetic SynthAV benchmark"
	@echo "make bench    run the benchmarks in benchmarks/ (slow)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS) || $(PY) -m pip install --quiet torch torchvision
	$(PY) -m pip install --quiet -e '.[dev,dask]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q

test-fast: lint
	$(VENV)/bin/pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) -m avmodels.demo $(if $(DEMO_METHOD),--method $(DEMO_METHOD),)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo/ .pytest_cache .ruff_cache
