# User-facing targets: `make reproduce`, `make report` (after it) and `make test`. Each bootstraps .venv idempotently.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORES  ?= all
# The lock (requirements/, written by `make lock`) pins every package of the CPU environment except torch, which
# is pinned here: pip takes the local CPU wheel where one lies on disk (PyTorch's +cpu build), PyPI's build elsewhere.
LOCK      := requirements/cpu.txt
TORCH     := torch==2.13.0
BUDGET ?= quick

.PHONY: venv lock reproduce report test bench lint clean-venv

# Re-installs only when the lock or pyproject.toml changes. The lock is a closed set, so it installs with
# --no-deps and every file is hash-checked; torch then finds its dependencies already at their locked versions and
# installs alone; `pip check` proves the set is complete.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
	    "$(LOCK) is for Python 3.11: pass PYTHON=python3.11, or pip install -e .[dev] for another Python")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# Lock tool: uv (`uv pip compile`), not pip-tools. uv resolves for a stated target (CPython 3.11, manylinux_2_28
# x86_64) whatever interpreter runs it, in seconds, ignores this machine's pip.conf, and `--no-emit-package torch`
# leaves torch out of the lock while keeping the dependencies of its CPU build (resolved from the local +cpu wheel
# in TORCH_WHEELS; PyPI's build would add several GB of nvidia-* packages). pip-compile resolves for the interpreter
# it runs in and through that machine's pip configuration.
# requirements/cuda.txt locks the GPU environment (every extra, PyPI's CUDA torch); the two CUDA extensions build
# against the installed torch, so they sit in requirements/cuda-ext.txt, installed after it.
LOCK_TOOL    := $(VENV)/lock-tool
UV           := $(LOCK_TOOL)/bin/uv
TORCH_WHEELS ?= /opt/wheels
TORCH_CPU    := $(subst ==,-,$(TORCH))+cpu-cp311
LOCK_TARGET  := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
                --custom-compile-command 'make lock'
CPU_EXTRAS   := --extra dev --extra slurm
CUDA_EXT     := mamba-ssm causal-conv1d
space        := $() $()

$(UV):
	$(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet uv==0.13.8

lock: $(UV)
	@ls $(TORCH_WHEELS)/$(TORCH_CPU)-*.whl >/dev/null 2>&1 || { echo "make lock: no $(TORCH_CPU) wheel in" \
	    "TORCH_WHEELS=$(TORCH_WHEELS); get it from https://download.pytorch.org/whl/cpu"; exit 1; }
	$(UV) pip compile --quiet pyproject.toml $(CPU_EXTRAS) $(LOCK_TARGET) --find-links $(TORCH_WHEELS) \
	    --no-emit-package torch -o $(LOCK)
	{ echo "# torch's CPU build, for installers that take one hash-checked set (environment.yml); make lock"; \
	  echo "# pip finds it in a --find-links folder holding the wheel or at https://download.pytorch.org/whl/cpu"; \
	  echo "$(TORCH)+cpu --hash=sha256:$$(sha256sum $(TORCH_WHEELS)/$(TORCH_CPU)-*.whl | cut -d' ' -f1)"; \
	} > requirements/torch-cpu.txt
	$(UV) pip compile --quiet pyproject.toml $(CPU_EXTRAS) --extra cuda $(LOCK_TARGET) \
	    $(addprefix --no-emit-package ,$(CUDA_EXT)) -o requirements/cuda.txt
	echo "# $(CUDA_EXT) from the GPU lock (make lock); they build against the installed torch" \
	    > requirements/cuda-ext.txt
	$(UV) pip compile --quiet pyproject.toml $(CPU_EXTRAS) --extra cuda $(LOCK_TARGET) \
	    | awk '/^[^ #]/ { keep = /^($(subst $(space),|,$(CUDA_EXT)))==/ } keep' >> requirements/cuda-ext.txt

# Rules call `python -m ...`: the venv goes first on PATH so jobs use its interpreter.
reproduce: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES) --config budget=$(BUDGET) -- main_tables

# The Snakemake report (tables, claims, figures) of what was built. `snakemake --report` collects the report()
# outputs of the target it is given, `all` when none is, and stops at the first one missing, so after `make
# reproduce` it must be given `main_tables`: `all` also lists the ablation and tau tables that `main_tables` never
# builds. REPORT_TARGET names the target that was built (main_tables, all) and BUDGET its budget.
REPORT_TARGET ?= main_tables
report: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --config budget=$(BUDGET) --report results/report.html \
	    -- $(REPORT_TARGET)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check qhyer baselines tests benchmarks

clean-venv:
	rm -rf $(VENV)
