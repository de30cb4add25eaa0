"""The CPU side of the GPU check (benchmarks/device_check.sh, benchmarks/bench_gpu.py): both scripts parse, the
whole script runs end to end in its --cpu-smoke mode (carried wheels installed into the --target folder, the
cuda-marked tests collected and skipped, bench_gpu.py's tiny CPU mode writing its CSV: scan, eager fp32 and bf16
steps, 1 and 2 runs sharing the device in spawned processes), and bad input is one line."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"
BENCH = ROOT / "benchmarks" / "bench_gpu.py"


@pytest.mark.parametrize("script", ["device_check.sh", "device_wheels.sh"])
def test_shell_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def write_probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, standing in for the carried nflows/hydra wheels."""
    wheel = folder / "qhyer_probe-0.1-py3-none-any.whl"
    files = {"qhyer_probe/__init__.py": "VALUE = 42\n",
             "qhyer_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: qhyer-probe\nVersion: 0.1\n",
             "qhyer_probe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                "Tag: py3-none-any\n"}
    files["qhyer_probe-0.1.dist-info/RECORD"] = "".join(f"{name},,\n" for name in files) + \
        "qhyer_probe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def test_device_check_cpu_smoke_runs_every_stage(tmp_path):
    wheels, out, site = tmp_path / "wheels", tmp_path / "out", tmp_path / "site"
    wheels.mkdir()
    write_probe_wheel(wheels)
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE_WHEELS": str(wheels), "DEVICE_SITE": str(site),
           "OUT": str(out)}
    result = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = result.stdout.split("=== summary")[-1]
    for stage in ("install", "env", "tests", "bench", "shared"):
        assert f"{stage}: exit 0" in summary, summary
    assert (site / "qhyer_probe" / "__init__.py").exists()
    assert "qhyer_probe-0.1.dist-info" in (out / "env.log").read_text()
    tests_log = (out / "tests.log").read_text()  # cuda tests collected (their imports work), all skipped on CPU
    assert re.search(r"^\d+ skipped\b", tests_log, re.MULTILINE) and "needs a CUDA GPU" in tests_log, tests_log

    with (out / "cpu_smoke.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    steps = [(v, "eager", p) for v in ("qhyer-hybrid", "qhyer-attention", "dt") for p in ("fp32", "bf16")]
    assert sorted((r["benchmark"], r["variant"], r["mode"], r["precision"]) for r in rows) == sorted([
        ("scan_fwd_bwd", "cpu-scan", "eager", "fp32"), ("scan_fwd_bwd", "cpu-scan-1thread", "eager", "fp32"),
        *(("train_step", *step) for step in steps),
        ("shared_gpu", "1 runs", "eager", "fp32"), ("shared_gpu", "2 runs", "eager", "fp32")])
    for row in rows:
        assert row["status"] == "ok" and float(row["ms"]) > 0 and row["device"] == "cpu", row
        assert row["torch"] and int(row["cpu_threads"]) >= 1
    assert {(r["runs"], r["repeats"]) for r in rows if r["benchmark"] == "shared_gpu"} == {("1", "3"), ("2", "3")}
    assert {r["repeats"] for r in rows if r["benchmark"] != "shared_gpu"} == {"1"}
    params = {r["variant"]: int(r["params"]) for r in rows if r["benchmark"] == "train_step"}
    assert params["qhyer-hybrid"] > params["qhyer-attention"] > params["dt"] > 0  # Mamba branch and critic on top
    shared_params = {int(r["params"]) for r in rows if r["benchmark"] == "shared_gpu"}
    assert shared_params == {params["qhyer-hybrid"] + params["dt"]}  # each run trains both


def test_bad_arguments_are_one_line(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument '--gpu'" in result.stderr
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE_WHEELS": str(tmp_path / "none"), "OUT": str(tmp_path)}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "run 'bash benchmarks/device_wheels.sh'" in result.stderr
    result = subprocess.run([sys.executable, str(BENCH), "--device", "cuda", "--out", str(tmp_path / "x.csv")],
                            capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith("bench_gpu: --device cuda")


@pytest.fixture(scope="module")
def bench_gpu():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(BENCH.parent))
    return bench_gpu


def test_a_failing_benchmark_is_a_row_not_a_crash(bench_gpu):
    measured = bench_gpu.measured

    def build():
        raise RuntimeError("inductor exploded\nlong traceback")

    args = type("Args", (), {"repeats": 1, "warmup": 0})()
    row = measured({"variant": "v"}, build, torch.device("cpu"), args)
    assert row == {"variant": "v", "ms": "", "status": "failed: RuntimeError: inductor exploded"}
    assert measured({}, lambda: lambda: None, torch.device("cpu"), args)["status"] == "ok"


def test_table_states_the_targets(bench_gpu, capsys):
    def row(benchmark, variant, ms, mode="eager", precision="fp32", runs=1):
        return {"benchmark": benchmark, "variant": variant, "device": "cuda", "mode": mode, "precision": precision,
                "runs": runs, "params": "", "ms": ms, "status": "ok"}

    bench_gpu.print_table([row("scan_fwd_bwd", "cpu-scan", 30.0), row("scan_fwd_bwd", "cpu-scan-1thread", 200.0),
                           row("scan_fwd_bwd", "triton-block8", 2.0), row("scan_fwd_bwd", "triton-block16", 1.5),
                           row("train_step", "qhyer-hybrid", 12.0), row("train_step", "qhyer-attention", 8.0),
                           row("train_step", "qhyer-hybrid", 9.0, precision="bf16"),
                           row("train_step", "qhyer-hybrid", 3.0, mode="reduce-overhead"),
                           {**row("train_step", "dt", "", "compiled"), "status": "failed: X: y"},
                           row("shared_gpu", "1 runs", 4000.0), row("shared_gpu", "5 runs", 5000.0, runs=5)])
    out = capsys.readouterr().out
    assert "vs cpu-scan: 20.0x faster" in out and "vs cpu-scan-1thread: 133.3x faster" in out
    assert "hybrid / attention-only step, eager: 1.50x" in out and "failed: X: y" in out
    assert "qhyer-hybrid step, bf16 / fp32 (eager): 0.75x" in out
    assert "qhyer-hybrid step, CUDA graphs (reduce-overhead) / eager: 0.25x" in out
    assert "5 runs sharing one cuda device: 1.25x the wall time of one run" in out
