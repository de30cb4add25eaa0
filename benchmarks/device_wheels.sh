#!/usr/bin/env bash
# Fills .device_wheels/ (git-ignored) with the pure-Python packages the GPU machine lacks, at the versions installed
# in this machine's .venv, for benchmarks/device_check.sh to install there without a network. Run it here (it needs
# PyPI), then pass `carry: [".device_wheels"]` to the device tool.
#
#     bash benchmarks/device_wheels.sh            # PACKAGES="nflows ..." to override the list below
#
# The GPU machine already has torch, triton, numpy, pandas, h5py, pytest, tqdm, pyyaml, seaborn and scipy (issue 13).
# nflows: QHyer's flow critic (imported by qhyer.algorithm); hydra-core, omegaconf, antlr4: `python -m qhyer.train`.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PYTHON=${PYTHON:-.venv/bin/python}
DEST=.device_wheels
PACKAGES=${PACKAGES:-nflows hydra-core omegaconf antlr4-python3-runtime}
DEVICE_PYTHON=3.12  # the GPU machine's Python (issue 13)

rm -rf "$DEST"
mkdir -p "$DEST"
for package in $PACKAGES; do
    version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package")
    # A wheel for the device's Python when PyPI has one; antlr4-python3-runtime 4.9.3 (pinned by omegaconf 2.3) is
    # an sdist only, so it is built here: it is pure Python, so the wheel fits any Python 3.
    "$PIP" download --quiet --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" -d "$DEST" \
        "$package==$version" 2>/dev/null \
        || "$PIP" wheel --quiet --no-deps -w "$DEST" "$package==$version"
done
ls -l "$DEST"
du -sh "$DEST"
