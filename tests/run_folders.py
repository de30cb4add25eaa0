"""Fake run folders for the report tests: the files a finished run leaves (summary.json via qhyer.runs.run_record,
eval_episodes.csv of every scheduled checkpoint, metrics.csv), with chosen scores and no training."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qhyer.agent import dataset_family
from qhyer.data.registry import get_spec
from qhyer.io import config_hash, git_commit, package_versions
from qhyer.methods import method_classes
from qhyer.report.tables import DT_METRICS
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.protocol import COLUMNS, normalized_score
from qhyer.run_folder import EvalConfig
from qhyer.runs import run_dir, run_record

FINAL = {"episodes_per_task": 4, "every": 0, "aggregate": "final", "last_k": 1}
# Mamba statistics a QHyer run logs at its last validation step: the card's values where it gives them, else 1
CARD_DT = {"play": {"delta_mean": 0.38, "abar_slowest_state": 0.92, "memory_steps_slowest_state": 12.0,
                    "memory_tokens_slowest_state": 12.0, "gate_attention_share": 0.57},
           "noisy": {"delta_mean": 1.05, "abar_slowest_state": 0.61, "memory_steps_slowest_state": 3.0,
                     "memory_tokens_slowest_state": 3.0, "gate_attention_share": 0.42}}
DT_VALUES = {kind: {m: card.get(m, 1.0) for m in DT_METRICS} for kind, card in CARD_DT.items()}


@functools.cache
def _checkout() -> tuple[str, dict[str, str]]:
    return git_commit(), package_versions()


def run_provenance(dataset: str) -> dict[str, Any]:
    """The provenance block a run trained now from this checkout records (io.provenance), with a stand-in dataset
    sha256 (the hash of the dataset's name: one per dataset, the same for every run)."""
    commit, versions = _checkout()
    return {"commit": commit, "config_hash": None, "versions": dict(versions),
            "inputs_sha256": {"dataset": hashlib.sha256(get_spec(dataset).name.encode()).hexdigest()}}


def official_size(dataset: str) -> tuple[int, int]:
    """(episodes, rows) of a dataset at its official size (D4RL: one continuous run)."""
    spec = get_spec(dataset)
    if spec.family == "ogbench":
        return spec.train_episodes, spec.train_episodes * spec.episode_length
    return 1, spec.total_steps


def write_run(root: Path, *, study: str = "main", variant: str = "default", method: str = "qhyer",
              dataset: str = "cube-single-play-v0", seed: int = 0, budget: str = "quick", steps: int = 100,
              schedule: Mapping[str, Any] = FINAL, score: float | Mapping[int, float] = 50.0,
              method_fields: Mapping[str, Any] | None = None, size: tuple[int, int] | None = None,
              folder: Path | None = None, dt_values: Mapping[str, float] | None = None,
              provenance: Mapping[str, Any] | None = None) -> Path:
    """A finished run folder (default: its RUN_DIR under `root`; `folder` puts it anywhere).

    `score` is the seed's reported number at every checkpoint, or {step: number} (success x100 for OGBench and
    AntMaze, normalised score for Maze2d); success episodes are rounded to whole episodes. `method_fields` are
    the study variant's method fields; the recorded method_config is the method's real config filled for the
    dataset family. `dt_values` overrides the Mamba statistics written to metrics.csv (QHyer runs). `provenance`
    is the recorded block (default: `run_provenance`, this checkout's).
    """
    spec = get_spec(dataset)
    folder = Path(folder or run_dir(str(root), budget, study, variant, method, dataset, seed))
    folder.mkdir(parents=True)
    config_cls, _ = method_classes(method)
    method_config = dataclasses.asdict(config_cls(**(method_fields or {})).for_family(dataset_family(spec)))
    schedule = dict(schedule)
    episodes_per_task = schedule["episodes_per_task"]
    dataset_episodes, dataset_rows = size or official_size(dataset)
    protocol = {"steps": steps, "batch_size": method_config["batch_size"], "episodes_per_task": episodes_per_task,
                "eval_every": schedule["every"], "eval_aggregate": schedule["aggregate"],
                "eval_last_k": schedule["last_k"], "dataset_episodes": dataset_episodes, "dataset_rows": dataset_rows}
    record = run_record(study=study, variant=variant, method=method, dataset=spec.name, seed=seed, budget=budget,
                        steps_trained=steps, protocol=protocol, method_config=method_config)
    record["provenance"] = dict(run_provenance(dataset) if provenance is None else provenance)
    record["config_hash"] = config_hash(record)  # stands in for the checkpoints' hash (the trainer's run_identity)
    (folder / "summary.json").write_text(json.dumps(record))

    eval_steps = EvalConfig(**schedule).steps(steps)
    tasks = np.repeat(eval_tasks(spec), episodes_per_task)
    episode = np.tile(np.arange(episodes_per_task), len(eval_tasks(spec)))
    columns: dict[str, list] = {name: [] for name in ("task", "episode", "success", "return", "step")}
    for step in eval_steps:
        value = score[step] if isinstance(score, Mapping) else score
        if spec.family == "maze2d":  # every episode scores `value`
            success = np.zeros(len(tasks), bool)
            returns = np.full(len(tasks), spec.ref_min_score + value / 100 * (spec.ref_max_score - spec.ref_min_score))
        else:
            success = episode < round(value / 100 * episodes_per_task)
            returns = success * 1.0
        for name, values in (("task", tasks), ("episode", episode), ("success", success), ("return", returns),
                             ("step", np.full(len(tasks), step))):
            columns[name].append(values)
    episodes = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    if spec.family != "ogbench":
        episodes["normalized_score"] = normalized_score(spec, episodes["return"].to_numpy())
    tags = {"method": method, "dataset": spec.name, "seed": seed, "length": 100, "budget": budget, "study": study,
            "variant": variant, "config_hash": record["config_hash"], "episodes_per_task": episodes_per_task,
            "max_steps": spec.eval_max_steps}
    episodes = episodes.assign(**tags)
    episodes[[*COLUMNS, *(c for c in episodes if c not in COLUMNS)]].to_csv(folder / "eval_episodes.csv",
                                                                              index=False)
    dt = {**DT_VALUES.get(spec.kind, DT_VALUES["play"]), **(dt_values or {})} if method == "qhyer" else {}
    write_metrics(folder, steps, dt)
    return folder


def write_metrics(folder: Path, steps: int, values: Mapping[str, float], layers: int = 2) -> None:
    """metrics.csv as the trainer logs it: a training loss, and per val step the Mamba statistics (overall and per
    layer); only the last step carries `values` (an earlier step is ten times larger)."""
    rows = []
    for step, scale in ((max(steps // 2, 1), 10.0), (steps, 1.0)):
        rows.append({"step": step, "split": "train", "metric": "loss", "value": 1.0})
        for name, value in values.items():
            rows.append({"step": step, "split": "val", "metric": name, "value": value * scale})
            rows += [{"step": step, "split": "val", "metric": f"{name}/layer{k}", "value": value * scale + k}
                     for k in range(layers)]
    pd.DataFrame(rows, columns=["step", "split", "metric", "value"]).to_csv(folder / "metrics.csv", index=False)

