# Two user-facing targets: `make reproduce` and `make test`. Both bootstrap .venv idempotently.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORES  ?= all
PROFILE ?= quick

.PHONY: venv reproduce test bench lint clean-venv

# Re-installs only when pyproject.toml changes. torch is installed first and pinned so pip takes the
# CPU wheel on CPU machines instead of resolving a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (snakemake 9)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Rules call `python -m ...`: the venv goes first on PATH so jobs use its interpreter.
reproduce: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES) --config profile=$(PROFILE) -- main_tables

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check qhyer baselines tests benchmarks

clean-venv:
	rm -rf $(VENV)
