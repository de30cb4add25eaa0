#!/usr/bin/env bash
# The GPU check of issue 13 in one command, for the lent GPU machine (one H200, 16 cores; torch 2.11 CUDA, Triton
# 3.6, numpy, pandas, h5py, pytest, seaborn; no network, no nflows/hydra-core/omegaconf/antlr4/mujoco/ogbench):
#   1. install  the carried wheels (.device_wheels/) into a --target folder put on PYTHONPATH      (timeout  40 s)
#   2. env      versions, GPU name, what was installed                                           (timeout  25 s)
#   3. tests    pytest -m cuda on every test file that has cuda-marked tests (tests/test_scan_triton.py: Triton
#               scan vs CPU scan, dispatch, one QHyer hybrid update on CUDA vs CPU; tests/test_precision.py:
#               bf16 vs fp32 update of every method, CUDA graphs (reduce-overhead) vs eager)    (timeout 160 s)
#   4. bench    benchmarks/bench_gpu.py --only scan step → benchmarks/results/gpu_<date>.csv: scan, ms/update eager
#               fp32 and bf16, reduce-overhead, compiled; printed table and ratios                (timeout 145 s)
#   5. shared   bench_gpu.py --only shared --append → the same CSV: 1 and 5 runs sharing the GPU  (timeout  85 s)
# Worst case 480 s (the timeouts, plus 5 s each for a stage that ignores SIGTERM); each stage is killed at its
# timeout so a hang cannot eat the device budget, and later stages still run (rows measured before a timeout stay in
# the CSV). Exit status 0 only when every stage passed.
#
# How to run it (the GPU machine is lent to some tasks only; see the device tool's `status`):
#   here, once, with network:   bash benchmarks/device_wheels.sh            # fills .device_wheels/ (git-ignored)
#   device tool `run`:          command  "bash benchmarks/device_check.sh"
#                               carry    [".device_wheels"]
#                               timeout_s 540
#   The CSV and every stage's log come back under the run's files (from $OUT); commit the CSV to
#   benchmarks/results/ and quote its table in docs/performance.md.
#
# CPU smoke mode (tests/test_device_check.py): `bash benchmarks/device_check.sh --cpu-smoke` runs the same stages with
# `bench_gpu.py --device cpu --tiny --no-compile` (the cuda tests skip; the shared stage runs 1 and 2 tiny runs),
# skips the install when no wheels are there, and writes its CSV under $OUT (default /tmp/device_check_smoke).
# Environment: PYTHON (default: the first of .venv/bin/python, python3, python that imports torch),
# DEVICE_WHEELS (default .device_wheels), DEVICE_SITE (the --target folder; default a fresh folder under /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
case "${1:-}" in
    "") ;;
    --cpu-smoke) MODE=cpu ;;
    *) echo "device_check.sh: unknown argument '$1' (the only option is --cpu-smoke)" >&2; exit 2 ;;
esac
if [ -z "${PYTHON:-}" ]; then  # the first interpreter that imports torch (this repo's .venv is not carried there)
    for candidate in .venv/bin/python python3 python; do
        "$candidate" -c "import torch" 2>/dev/null && PYTHON=$candidate && break
    done
fi
if [ -z "${PYTHON:-}" ]; then
    echo "device_check.sh: no Python here imports torch (tried .venv/bin/python, python3, python); set PYTHON=..." >&2
    exit 2
fi
WHEELS=${DEVICE_WHEELS:-.device_wheels}
SITE=${DEVICE_SITE:-$(mktemp -d /tmp/qhyer_device_site.XXXXXX)}
if [ "$MODE" = gpu ]; then
    LOGS=${OUT:-benchmarks/results/logs}
    CSV=benchmarks/results/gpu_$(date +%F).csv
    BENCH_ARGS=(--device cuda)
else
    LOGS=${OUT:-/tmp/device_check_smoke}
    CSV=$LOGS/cpu_smoke.csv
    BENCH_ARGS=(--device cpu --tiny --no-compile --repeats 1 --warmup 0)
fi
mkdir -p "$LOGS" "$(dirname "$CSV")"
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"  # the repo (not pip-installed there) and the wheels

SUMMARY=()
FAILED=0
stage() {  # stage NAME SECONDS COMMAND...: run under a timeout, log to $LOGS/NAME.log, record its exit status
    local name=$1 seconds=$2
    shift 2
    local start=$SECONDS command="$*"
    echo "=== $name (timeout ${seconds} s): ${command:0:160}"
    timeout --kill-after=5 "$seconds" "$@" 2>&1 | tee "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    local note=""
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note=" (timed out)"
    SUMMARY+=("$name: exit $rc$note, $((SECONDS - start)) s")
    [ "$rc" -eq 0 ] || FAILED=1
}

shopt -s nullglob
wheel_files=("$WHEELS"/*.whl)
if [ ${#wheel_files[@]} -gt 0 ]; then
    stage install 40 "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "${wheel_files[@]}"
elif [ "$MODE" = gpu ]; then
    echo "device_check.sh: no wheels in $WHEELS; run 'bash benchmarks/device_wheels.sh' on the CPU machine and pass" \
         "carry [\"$WHEELS\"] to the device tool" >&2
    exit 2
else
    SUMMARY+=("install: skipped (no wheels in $WHEELS)")
fi

stage env 25 "$PYTHON" -c "
import importlib.util, os, sys, torch
triton = importlib.util.find_spec('triton') and __import__('triton').__version__
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
print(f'python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton}, '
      f'GPU {gpu}, {os.cpu_count()} CPUs')
site = '$SITE'
print('installed here:', ', '.join(sorted(p for p in os.listdir(site) if p.endswith('.dist-info'))) or 'nothing')
"

mapfile -t cuda_tests < <(grep -l "pytest.mark.cuda" tests/test_*.py)
if [ ${#cuda_tests[@]} -gt 0 ]; then
    stage tests 160 "$PYTHON" -m pytest -m cuda -p no:cacheprovider "${cuda_tests[@]}"
else
    SUMMARY+=("tests: no cuda-marked tests found")
    FAILED=1
fi

stage bench 145 "$PYTHON" benchmarks/bench_gpu.py --out "$CSV" --only scan step "${BENCH_ARGS[@]}"
stage shared 85 "$PYTHON" benchmarks/bench_gpu.py --out "$CSV" --only shared --append "${BENCH_ARGS[@]}"

[ -n "${OUT:-}" ] && [ -f "$CSV" ] && [ "$(dirname "$CSV")" != "$OUT" ] && cp "$CSV" "$OUT/"
echo "=== summary ($MODE mode): results $CSV, logs $LOGS"
printf '  %s\n' "${SUMMARY[@]}"
exit "$FAILED"
