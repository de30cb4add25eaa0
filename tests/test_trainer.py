"""The shared training loop: run folder layout, bit-identical resume, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qhyer.errors import ConfigError
from qhyer.methods import method_classes
from qhyer.run_folder import EvalConfig, LoopConfig, RunConfig, load_run
from qhyer.trainer import train

DATASET = "cube-single-play-v0"


def write_tiny_ogbench(folder: Path, episodes: int = 3, length: int = 30, seed: int = 0) -> Path:
    """A synthetic file in OGBench's npz layout with cube-single's sizes (obs 28, act 5)."""
    rng = np.random.default_rng(seed)
    rows = episodes * length
    terminals = np.zeros(rows, bool)
    terminals[length - 1::length] = True
    arrays = {"observations": np.cumsum(rng.normal(0, 0.1, (rows, 28)), 0).astype(np.float32),
              "actions": rng.uniform(-1, 1, (rows, 5)).astype(np.float32), "terminals": terminals,
              "qpos": np.zeros((rows, 21), np.float32), "qvel": np.zeros((rows, 20), np.float32)}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{DATASET}.npz", **arrays)
    np.savez_compressed(folder / f"{DATASET}-val.npz", **arrays)
    return folder


TINY = {"qhyer": {"embed_dim": 16, "n_layers": 1, "critic_hidden": 32, "q_head_hidden": (32,), "flow_layers": 2,
                  "d_state": 4}}


def tiny_config(tmp_path: Path, method: str, steps: int, **method_overrides) -> RunConfig:
    config_cls, _ = method_classes(method)
    method_overrides = {**TINY.get(method, {}), **method_overrides}
    return RunConfig(method=config_cls(batch_size=8, **method_overrides), dataset=DATASET, seed=3,
                     data_dir=str(write_tiny_ogbench(tmp_path / "data")), run_dir=str(tmp_path / "run"),
                     budget="test", train=LoopConfig(steps=steps, log_every=1, val_every=2, val_batches=1,
                                                      checkpoint_every=2, progress=False, threads=1),
                     eval=EvalConfig(enabled=False))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["agent"]["modules"]


@pytest.mark.parametrize("method", ["gcbc", "dt", "qhyer"])
def test_resume_is_bit_identical(tmp_path, method):
    straight = train(tiny_config(tmp_path / "a", method, steps=6))
    partial_cfg = tiny_config(tmp_path / "b", method, steps=3)
    train(partial_cfg)
    resumed = train(tiny_config(tmp_path / "b", method, steps=6))
    for key, value in final_weights(straight).items():
        assert torch.equal(value, final_weights(resumed)[key]), key
    # The 3-step run also logged its own last step; every row of the straight run must reappear unchanged.
    keys = ["step", "split", "metric"]
    metrics_a = pd.read_csv(straight / "metrics.csv")
    merged = metrics_a.merge(pd.read_csv(resumed / "metrics.csv"), on=keys, how="left", suffixes=("", "_resumed"))
    assert merged["value_resumed"].notna().all()
    assert (merged["value"] == merged["value_resumed"]).all()


def test_run_folder_layout_and_reload(tmp_path):
    run_dir = train(tiny_config(tmp_path, "gcbc", steps=4))
    for name in ("config.yaml", "method_config.json", "summary.json", "metrics.csv", "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert set(metrics["split"]) == {"train", "val"} and metrics["step"].max() == 4
    cfg, agent = load_run(run_dir)
    assert cfg.method.name == "gcbc" and cfg.dataset == DATASET and cfg.train.steps == 4
    for key, value in final_weights(run_dir).items():
        assert torch.equal(agent.state_dict()[key], value)


def test_same_seed_same_numbers(tmp_path):
    first = final_weights(train(tiny_config(tmp_path / "a", "gcbc", steps=3)))
    second = final_weights(train(tiny_config(tmp_path / "b", "gcbc", steps=3)))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_bad_steps_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        train(tiny_config(tmp_path, "gcbc", steps=0))


@pytest.mark.parametrize("args, needle", [
    (["dataset=no-such-dataset"], "unknown dataset"),
    (["method.no_such_field=1"], "no_such_field"),
    (["method=no-such-method"], "no-such-method"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, args, needle):
    result = subprocess.run([sys.executable, "-m", "qhyer.train", f"run_dir={tmp_path}/run", *args],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
