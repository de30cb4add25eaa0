"""A run folder: its files, the config and checkpoints they are bound to, and the rules that keep them true.

The trainer (qhyer/trainer.py) is the loop; everything it, `python -m qhyer.evaluate` and the tests read or write in
a run folder goes through this module. What a run *is* (its identity fields, its folder path under the runs root,
the summary.json record and the strict reader of its evaluation that the report uses) is qhyer/runs.py, which
imports neither torch nor this module.

Layout (`RunConfig.run_dir`):
    config.yaml           resolved run config (method fields filled for the dataset family) and the `config_hash` of
                          the checkpoints it belongs to
    method_config.json    the method's typed config, beside its checkpoint (CORL style)
    checkpoints/last.pt   latest TrainState, with its config (`run_identity`: the data's sha256 included) and hash
    checkpoints/step*.pt  evaluation checkpoints the run's schedule keeps (eval.every, eval.aggregate): the agent's
                          weights only, which is all evaluation reads (a QT source run keeps 50 of them)
    metrics.csv           tidy training/validation metrics: step, split, metric, value
    tb/                   the same metrics for TensorBoard
    eval_episodes.csv     per-episode evaluation results of every scheduled checkpoint, each row bound to its
                          checkpoint (qhyer.runs.EVALUATION_COLUMNS: step, config_hash, episodes_per_task, max_steps)
    summary.json          the run's record (qhyer/runs.py): identity, protocol, resolved method fields, provenance,
                          the checkpoints' config_hash
    train_failed.txt      the error that stopped the started run, for the retries of its job (FAILURE_FILE)

The files describe one another: evaluation refuses a checkpoint whose hash is not config.yaml's (a copied `last.pt`)
or a summary.json of another checkpoint; training removes summary.json and the evaluations before it changes the
checkpoint (resume with more steps, restart, `train.resume=false`), so a killed run leaves nothing a table reads;
the report's one reader (qhyer.runs.run_evaluation) takes only rows of summary.json's checkpoints.

All state that must survive a kill lives in `TrainState` (agent modules, optimisers, schedulers, the sampler and its
RNG position, the global torch/numpy RNGs and the step counter); `last.pt` is exactly `TrainState.state_dict()`,
written atomically, so a resumed run continues bit-identically on CPU.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import pickle
import random
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from omegaconf import MISSING

from qhyer.agent import Agent, DataInfo, MethodConfig
from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, DataError, DivergedError, RetryRefused
from qhyer.io import (
    atomic_path,
    config_hash,
    folder_lock,
    provenance,
    remove_stale_temporaries,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from qhyer.methods import method_classes
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.protocol import (
    EnvPool,
    eval_horizon,
    evaluate_policy,
    make_env_pool,
    normalized_score,
    summarize,
    write_results,
)
from qhyer.runs import METRICS_COLUMNS, METRICS_FILE, eval_steps, read_summary, run_record

# --- the run's config (config.yaml; the Hydra schema of `python -m qhyer.train`) -------------------------------

@dataclass
class LoopConfig:
    steps: int = 100_000          # DT/LSDT: 100k gradient updates
    log_every: int = 500
    val_every: int = 5_000
    val_batches: int = 4
    checkpoint_every: int = 5_000
    resume: bool = True           # continue from checkpoints/last.pt when it exists
    # A checkpoint of a different result-changing config (run_identity) is refused; `restart` discards it and
    # trains afresh instead (for workflow reruns whose params changed on purpose).
    on_changed_config: str = "refuse"  # refuse | restart
    device: str = "auto"          # 'auto' → cuda when available, else cpu
    threads: int = 0              # torch intra-op threads; 0 keeps torch's default
    # torch.compile (inductor) of the agent's loss function; equal to eager within float32 rounding
    # (tests/test_compile.py). Off by default: on the 2-core CPU it paid only at small widths
    # (benchmarks/bench_train_step.py --compile; docs/performance.md). Not part of the run's identity.
    compile: bool = False
    # torch.compile's mode: default | reduce-overhead (CUDA graphs of the compiled forward and backward on CUDA; on
    # CPU the same code as default). Not part of the run's identity either.
    compile_mode: str = "default"
    # fp32 | bf16: bf16 runs each method's loss functions (forward and losses) under bfloat16 autocast; weights,
    # gradients, optimizer state and the selective scan stay float32 (tests/test_precision.py states the tolerances).
    # It changes the numbers, so bf16 is part of the run's identity (run_identity).
    precision: str = "fp32"
    progress: bool = True
    # Snakemake's attempt at this job (the train rule passes it; 1 by hand). A retry (> 1) of a run that stopped on
    # an error rather than a time limit exits with that error at once (FAILURE_FILE): resubmission is for jobs over
    # their time limit, and a diverged or broken run would otherwise retrain from its last checkpoint to the same
    # error on every one of the rule's retries (19 at paper). Not part of the run's identity.
    attempt: int = 1


CHANGED_CONFIG_ACTIONS = ("refuse", "restart")
EVAL_AGGREGATES = ("final", "mean_last", "best")


@dataclass
class EvalConfig:
    enabled: bool = True
    episodes_per_task: int = 50   # OGBench final numbers use 50 per task (impls/hyperparameters.sh)
    num_envs: int = 25            # episodes stepped together, one model call per step for all
    workers: int = 1              # processes stepping those envs (qhyer/rollout/workers.py); 1 = the trainer's own
    # Evaluation schedule: which checkpoints are evaluated and how a seed's score is made from them.
    every: int = 0                # keep an evaluation checkpoint every `every` updates (0: the final one only)
    aggregate: str = "final"      # final | mean_last (OGBench: mean of the evaluations at 800k, 900k, 1M) |
    #                               best (QT/LSDT report the best evaluation over training)
    last_k: int = 1               # mean_last: how many of the last evaluations (OGBench: 3)

    def check(self, steps: int) -> None:
        """Reject a schedule the run cannot follow, before any training."""
        if self.aggregate not in EVAL_AGGREGATES:
            raise ConfigError(f"eval.aggregate must be one of {', '.join(EVAL_AGGREGATES)} (got '{self.aggregate}')")
        if self.every < 0 or min(self.last_k, self.episodes_per_task, self.num_envs, self.workers) < 1:
            raise ConfigError("eval.every must be >= 0 and eval.last_k, episodes_per_task, num_envs, workers >= 1")
        if self.aggregate != "final" and not self.every:
            raise ConfigError(f"eval.aggregate={self.aggregate} needs eval.every > 0 (the evaluation interval)")
        if self.aggregate == "mean_last" and self.every and len(self.steps(steps)) < self.last_k:
            raise ConfigError(f"eval.last_k={self.last_k} but only {len(self.steps(steps))} evaluations fit in "
                              f"{steps} updates every {self.every}")

    def steps(self, steps: int) -> list[int]:
        """Training steps whose checkpoints this schedule evaluates (always ending with the final step)."""
        return eval_steps(steps, self.every, self.aggregate, self.last_k)


@dataclass
class RunConfig:
    method: Any = MISSING         # a method's config dataclass (Hydra group `method`)
    dataset: str = "cube-single-play-v0"
    seed: int = 0
    data_dir: str = "data"
    run_dir: str = "runs/${method.name}/${dataset}/seed${seed}"
    # Identity beyond method/dataset/seed (qhyer/runs.py): recorded in summary.json and every result row.
    budget: str = "custom"        # the named budget (workflow/config/budgets/<name>.yaml) the run belongs to
    study: str = "main"           # main | ablation | tau (qhyer.runs.STUDIES)
    variant: str = "default"      # the study's variant; the method fields it sets are in method_config
    train: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def protocol(self, dataset: Any) -> dict[str, Any]:
        """The protocol fields of qhyer.runs.PROTOCOL_FIELDS, recorded with the run."""
        return {"steps": self.train.steps, "batch_size": self.method.batch_size,
                "episodes_per_task": self.eval.episodes_per_task, "eval_every": self.eval.every,
                "eval_aggregate": self.eval.aggregate, "eval_last_k": self.eval.last_k,
                "dataset_episodes": int(len(dataset.episode_starts)), "dataset_rows": int(len(dataset))}


# --- the checkpoint's state and the agent it restores -------------------------------------------------------

@dataclass
class TrainState:
    agent: Agent
    sampler: Any
    step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "agent": self.agent.train_state(),
            "sampler": self.sampler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.agent.load_train_state(state["agent"])
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def build_agent(method_cfg: MethodConfig, info: DataInfo, device: torch.device) -> Agent:
    _, agent_cls = method_classes(method_cfg.name)
    return agent_cls(method_cfg, info).to(device)


# --- the folder ---------------------------------------------------------------------------------------------

RESULT_FILES = ("summary.json", "eval_episodes.csv", "eval_episodes_summary.csv")
RUN_OUTPUTS = ("checkpoints", "metrics.csv", "tb")


def checkpoint_path(run_dir: Path, step: int | None = None) -> Path:
    """`checkpoints/last.pt` (the resumable state), or the evaluation checkpoint kept at `step`."""
    return run_dir / "checkpoints" / ("last.pt" if step is None else f"step{step:09d}.pt")


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Create and lock the run folder and clear what a killed writer left half-written in it; one this call created
    is removed again when the run fails before writing its config.yaml (bad data, a corrupt file), so a rejected run
    leaves no stub folder."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(run_dir):
        try:
            remove_stale_temporaries(run_dir)
            remove_stale_temporaries(run_dir / "checkpoints")
            yield
        except BaseException:
            if created and not (run_dir / "config.yaml").exists():
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


FAILURE_FILE = "train_failed.txt"


def refuse_retry_of_failure(run_dir: Path, attempt: int) -> None:
    """Within the locked folder, before any data is loaded: a retry of the job (`attempt` > 1) of a run that
    stopped on an error (FAILURE_FILE, `failure_kept`) exits with that error; attempt 1 (a new workflow run, or a run
    by hand) clears it and trains again."""
    failure = run_dir / FAILURE_FILE
    if attempt == 1:
        failure.unlink(missing_ok=True)
    elif failure.exists():
        raise RetryRefused(f"attempt {attempt} of this job: its run stopped on an error, not a time limit "
                           f"({failure}: {failure.read_text().strip()})",
                           "not retried, the same config would fail the same way: fix the cause and rerun")


@contextlib.contextmanager
def failure_kept(run_dir: Path) -> Iterator[None]:
    """Keep the error that stops a started run (training or its record) in FAILURE_FILE. Refusals before it starts
    leave the folder as it was and fail again in seconds. A time limit (Terminated) and Ctrl-C are not errors; nor
    is CUDA running out of memory, which a retry may find free again on a shared GPU."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as err:
        write_text_atomic(run_dir / FAILURE_FILE, f"{type(err).__name__}: {' '.join(str(err).split())}\n")
        raise


# --- the identity a checkpoint is bound to ------------------------------------------------------------------

def data_hashes(train_data: Any, val_data: Any) -> dict[str, str | None]:
    """sha256 of the files a run reads (train, and validation or None): the data's content in its identity, so a
    dataset regenerated at the same size from another seed is a different run."""
    return {"train": sha256_file(train_data.source), "val": sha256_file(val_data.source) if val_data else None}


def run_identity(cfg: RunConfig, family_method: MethodConfig, dataset: Any,
                 data_sha256: dict[str, str | None]) -> dict[str, Any]:
    """The config a checkpoint is bound to: everything that changes its weights or the checkpoints it keeps,
    the content of its data included (`data_sha256`: the train and validation files it read, `data_hashes`).

    The method fields are taken before `for_budget`, so a deliberate increase of train.steps keeps the identity
    (a schedule that spans the run then spans the longer run). Logging, devices, threads, compilation and the
    checkpoint interval do not change results and are left out. train.precision does; it is recorded only when not
    fp32, so checkpoints written before the option existed keep their hash.
    """
    precision = {} if cfg.train.precision == "fp32" else {"precision": cfg.train.precision}
    return {"method": dataclasses.asdict(family_method), "dataset": cfg.dataset, "seed": cfg.seed,
            "dataset_rows": int(len(dataset)), "dataset_episodes": int(len(dataset.episode_starts)),
            "data_sha256": data_sha256,
            "eval_schedule": {"every": cfg.eval.every, "aggregate": cfg.eval.aggregate, "last_k": cfg.eval.last_k},
            **precision}


def _differing_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _resume_point(payload: dict[str, Any], identity: dict[str, Any], steps: int, run_dir: Path) -> str | None:
    """Why the checkpoint cannot be continued by this config (None: it can)."""
    ways_out = f"train into a new run_dir, or delete {run_dir} to start afresh"
    saved = payload.get("config_identity")
    if saved is None:
        return f"{run_dir} holds a checkpoint that records no config (written before configs were bound) — {ways_out}"
    if payload.get("config_hash") != config_hash(identity):
        return (f"{run_dir} holds a checkpoint of a different config (differs in "
                f"{', '.join(_differing_keys(saved, identity)) or 'its hash'}) — {ways_out}")
    if steps < payload["train_steps"]:
        return (f"train.steps={steps} is below the train.steps={payload['train_steps']} the checkpoint in {run_dir} "
                f"was trained for (step {payload['step']} reached) — {ways_out}")
    return None


# --- config.yaml --------------------------------------------------------------------------------------------

def _config_dict(cfg: RunConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out["method"] = dataclasses.asdict(cfg.method)
    return out


def _write_run_config(run_dir: Path, cfg: RunConfig, bound_hash: str) -> None:
    """config.yaml records the config hash of the checkpoints it was written with (`read_run_checkpoint` compares)."""
    write_text_atomic(run_dir / "config.yaml",
                      yaml.safe_dump({**_config_dict(cfg), "config_hash": bound_hash}, sort_keys=False))
    write_json_atomic(run_dir / "method_config.json", dataclasses.asdict(cfg.method))


def _read_bound_config(run_dir: Path) -> tuple[RunConfig, str | None]:
    """config.yaml's run config and the checkpoint config hash it records (None: written before it recorded one)."""
    config_file = run_dir / "config.yaml"
    if not checkpoint_path(run_dir).exists() or not config_file.exists():
        raise DataError(f"{run_dir} holds no trained run (config.yaml and checkpoints/last.pt expected)",
                        "train it first with `python -m qhyer.train`")
    try:
        raw = yaml.safe_load(config_file.read_text())
        bound = raw.pop("config_hash", None)
        config_cls, _ = method_classes(raw["method"]["name"])
        return RunConfig(**{**raw, "method": config_cls(**raw["method"]), "train": LoopConfig(**raw["train"]),
                            "eval": EvalConfig(**raw["eval"])}), bound
    except (yaml.YAMLError, TypeError, KeyError, AttributeError) as err:
        raise DataError(f"{config_file} is not a run config this harness wrote ({type(err).__name__}: {err})",
                        "restore it, or retrain the run") from None


def read_run_config(run_dir: Path) -> RunConfig:
    """The resolved config a trained run folder recorded (config.yaml), with a trained checkpoint beside it."""
    return _read_bound_config(Path(run_dir))[0]


# --- checkpoints --------------------------------------------------------------------------------------------

def save_checkpoint(state: TrainState, path: Path, info: DataInfo, identity: dict[str, Any], steps: int,
                    weights_only: bool = False) -> None:
    """Write the train state with the config it belongs to (run_identity, its hash and the configured steps).

    `weights_only` (evaluation checkpoints) keeps the step and the agent's modules without optimiser, scheduler,
    sampler and RNG state: evaluation reads nothing else, and a QT source run keeps 50 of them (at paper sizes
    29 MB each instead of 57 MB: 1.4 GB a run instead of 2.9 GB)."""
    modules = state.agent.state_dict()
    bad = [name for name, value in modules.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise DivergedError(f"training diverged before step {state.step}: non-finite weights in {', '.join(bad[:3])}",
                            "no checkpoint was written; lower method.lr and train into a new run_dir")
    payload = {"step": state.step, "agent": {"modules": modules}} if weights_only else state.state_dict()
    payload["data_info"] = {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "spec"}
    payload.update(config_identity=identity, config_hash=config_hash(identity), train_steps=steps)
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as err:  # torch reports a failed write (full disk, quota) as a RuntimeError
            raise DataError(f"could not write {path} ({str(err).splitlines()[0]})",
                            "the disk is probably full: free space (or train into a run_dir elsewhere) and rerun; "
                            "the run resumes from its last whole checkpoint") from None


WEIGHTS_KEYS = ("step", "agent", "data_info")  # what evaluation reads: every checkpoint has them
TRAIN_STATE_KEYS = (*WEIGHTS_KEYS, "sampler", "rng")  # what resuming reads: checkpoints/last.pt


def read_checkpoint(path: Path, device: str | torch.device = "cpu",
                    keys: tuple[str, ...] = TRAIN_STATE_KEYS) -> dict[str, Any]:
    """A checkpoint's payload, or one DataError line when the file is empty, truncated or not a checkpoint holding
    `keys` (an evaluation checkpoint put in place of last.pt has no train state to resume)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, AttributeError) as err:
        raise DataError(f"{path} is not a readable checkpoint ({type(err).__name__})",
                        "delete it (or its whole run folder) to train from the start") from None
    if not isinstance(payload, dict) or any(key not in payload for key in WEIGHTS_KEYS):
        raise DataError(f"{path} is not a training checkpoint of this harness",
                        "delete it (or its whole run folder) to train from the start")
    if any(key not in payload for key in keys):
        raise DataError(f"{path} holds weights only (an evaluation checkpoint), no train state to resume from",
                        "delete it (or its whole run folder) to train from the start")
    return payload


def read_run_checkpoint(run_dir: str | Path, step: int | None = None,
                        device: str | torch.device = "cpu") -> tuple[RunConfig, dict[str, Any]]:
    """config.yaml's run config and the payload of its checkpoint of `step` (None: checkpoints/last.pt), refused
    with one line unless the checkpoint is one this config wrote (a `last.pt` copied from another run, another
    method's included) and holds that step."""
    run_dir = Path(run_dir)
    cfg, bound = _read_bound_config(run_dir)
    checkpoint = checkpoint_path(run_dir, None if step in (None, cfg.train.steps) else step)
    if not checkpoint.exists():
        raise DataError(f"{run_dir} kept no evaluation checkpoint at step {step}",
                        "its eval.every / eval.aggregate did not ask for one; retrain with that schedule")
    payload = read_checkpoint(checkpoint, device, WEIGHTS_KEYS)
    retrain = f"delete {run_dir} and retrain it (or restore the run's own checkpoints)"
    if bound is None:
        raise DataError(f"{run_dir}/config.yaml records no config_hash (written before run folders were bound to "
                        "their checkpoints)", retrain)
    if payload.get("config_hash") != bound:
        raise DataError(f"{checkpoint} is a checkpoint of another config (config_hash {payload.get('config_hash')}) "
                        f"than {run_dir}/config.yaml ({bound}): copied or left there from another run", retrain)
    if step is not None and payload["step"] != step:
        raise DataError(f"{checkpoint} holds step {payload['step']}, not the scheduled step {step}", retrain)
    return cfg, payload


# --- resume, restart, discard -------------------------------------------------------------------------------

def start_or_resume(state: TrainState, cfg: RunConfig, identity: dict[str, Any], run_dir: Path,
                    device: torch.device) -> dict[str, int]:
    """Bind the locked run folder to `identity` before training: continue from checkpoints/last.pt when allowed
    (`_resume`), remove the record and evaluations the training is about to outdate, and write config.yaml with the
    checkpoints' config hash. Returns what summary.json records about resuming."""
    resumed = _resume(state, cfg, identity, run_dir, device)
    if state.step < cfg.train.steps:
        # The checkpoint is about to change: the old record and evaluations no longer describe it.
        _discard_results(run_dir)
    _write_run_config(run_dir, cfg, config_hash(identity))
    return resumed


def _resume(state: TrainState, cfg: RunConfig, identity: dict[str, Any], run_dir: Path,
            device: torch.device) -> dict[str, int]:
    """Continue from checkpoints/last.pt when allowed; returns what summary.json records about it."""
    checkpoint = checkpoint_path(run_dir)
    if not cfg.train.resume:
        if _discard_run(run_dir):
            print(f"train.resume=false: removed the previous run's checkpoints, metrics and results in {run_dir}",
                  file=sys.stderr, flush=True)
        return {}
    if not checkpoint.exists():
        return {}
    payload = read_checkpoint(checkpoint, device)
    refusal = _resume_point(payload, identity, cfg.train.steps, run_dir)
    if refusal and cfg.train.on_changed_config == "restart":
        _discard_run(run_dir)  # a fresh start: the old run's checkpoints and curves describe another config
        return {}
    if refusal:
        raise ConfigError(refusal)
    state.load_state_dict(payload)
    print(f"resuming from {checkpoint} at step {payload['step']}", file=sys.stderr, flush=True)  # job logs show it
    resumed = {"resumed_from_step": payload["step"]}
    if cfg.train.steps > payload["train_steps"]:
        resumed["steps_extended_from"] = payload["train_steps"]
    return resumed


def _discard_results(run_dir: Path) -> None:
    """Remove the run's record and evaluations, the record first: a folder without summary.json is an unfinished
    run that no table, claim or evaluation accepts, so a kill between two removals leaves nothing that lies."""
    for name in RESULT_FILES:
        (run_dir / name).unlink(missing_ok=True)


def _discard_run(run_dir: Path) -> bool:
    """Remove everything a previous run wrote (results first, see `_discard_results`); False when there was none."""
    found = [run_dir / name for name in (*RESULT_FILES, *RUN_OUTPUTS) if (run_dir / name).exists()]
    _discard_results(run_dir)
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return bool(found)


# --- records: metrics.csv, summary.json -----------------------------------------------------------------------

class MetricsLog:
    """Tidy CSV (step, split, metric, value) plus TensorBoard; on resume rows after the checkpoint are dropped."""

    FIELDS = METRICS_COLUMNS

    def __init__(self, run_dir: Path, resume_step: int):
        self.path = run_dir / METRICS_FILE
        kept = []
        if resume_step > 0 and self.path.exists():
            with open(self.path, newline="") as fh:
                kept = [row for row in csv.DictReader(fh) if int(row["step"]) <= resume_step]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._fh, self.FIELDS)
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.writerow({"step": step, "split": split, "metric": key, "value": f"{value:.6g}"})
            self._tb.add_scalar(f"{split}/{key}", value, step)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        self._tb.close()


def finish_run(run_dir: Path, cfg: RunConfig, dataset: Any, state: TrainState, identity: dict[str, Any],
               data_sha256: dict[str, str | None], resumed: dict[str, int], train_seconds: float,
               device: torch.device) -> None:
    """Evaluate the trained run when `cfg.eval.enabled`, then write its record, summary.json, last: a folder
    without one is an unfinished run."""
    summary: dict[str, Any] = {**run_record(study=cfg.study, variant=cfg.variant, method=cfg.method.name,
                                            dataset=cfg.dataset, seed=cfg.seed, budget=cfg.budget,
                                            steps_trained=state.step, protocol=cfg.protocol(dataset),
                                            method_config=dataclasses.asdict(cfg.method)),
                               **resumed, "config_hash": config_hash(identity),
                               "train_seconds_this_process": round(train_seconds, 2),
                               "provenance": {**provenance(_config_dict(cfg)),
                                              "inputs_sha256": {"dataset": data_sha256["train"],
                                                                "dataset_val": data_sha256["val"]}}}
    if cfg.eval.enabled:
        summary["eval"] = evaluate_run(run_dir, cfg, device=str(device))
    write_json_atomic(run_dir / "summary.json", summary)


def check_finished(run_dir: str | Path, cfg: RunConfig) -> int:
    """The trained step of a finished run; an unfinished one (no summary.json or too few steps) is refused, and so
    is a summary.json that describes another checkpoint than checkpoints/last.pt."""
    run_dir = Path(run_dir)
    payload = read_run_checkpoint(run_dir)[1]
    step, summary_file = int(payload["step"]), run_dir / "summary.json"
    if not summary_file.exists() or step < cfg.train.steps:
        raise DataError(f"{run_dir} is unfinished (trained {step} of {cfg.train.steps} steps"
                        f"{'' if summary_file.exists() else ', no summary.json'})",
                        "resume its training, or pass --allow-partial to evaluate the step it reached")
    summary = read_summary(run_dir)
    if (summary.get("config_hash"), summary.get("steps_trained")) != (payload["config_hash"], step):
        raise DataError(f"{summary_file} describes another checkpoint (config_hash {summary.get('config_hash')}, "
                        f"step {summary.get('steps_trained')}) than checkpoints/last.pt ({payload['config_hash']}, "
                        f"step {step})", f"rerun the run's training to rewrite it, or delete {run_dir} and retrain")
    return step


# --- evaluation of a run folder -----------------------------------------------------------------------------

def _agent_from(cfg: RunConfig, payload: dict[str, Any], device: str | torch.device) -> Agent:
    info = DataInfo(spec=get_spec(cfg.dataset), **payload["data_info"])
    agent = build_agent(cfg.method, info, torch.device(device))
    agent.load_state_dict(payload["agent"]["modules"])
    return agent


def load_run(run_dir: str | Path, device: str = "cpu", step: int | None = None) -> tuple[RunConfig, Agent]:
    """Rebuild a trained agent from its run folder: config.yaml and the checkpoint of `step` (None: the last)."""
    cfg, payload = read_run_checkpoint(run_dir, step, device)
    return cfg, _agent_from(cfg, payload, device)


def evaluate_agent(agent: Agent, cfg: RunConfig, checkpoint: dict[str, Any], max_steps: int | None = None,
                   envs: EnvPool | None = None) -> pd.DataFrame:
    """Episodes of the shared evaluation protocol for one checkpoint, tagged with the run's identity and what binds
    them to that checkpoint (`EVALUATION_COLUMNS`: its `step` and `config_hash`, the episodes per task and the
    episode step limit they were evaluated with).

    `max_steps` caps episodes (smoke runs only); `envs` (from `make_env_pool`) reuses environments across checkpoints.
    """
    spec = get_spec(cfg.dataset)
    agent.eval()
    episodes = evaluate_policy(agent.policy(), spec, episodes_per_task=cfg.eval.episodes_per_task, seed=cfg.seed,
                               num_envs=cfg.eval.num_envs, workers=cfg.eval.workers, method=cfg.method.name,
                               progress=cfg.train.progress, max_steps=max_steps, envs=envs,
                               checkpoint_step=int(checkpoint["step"]))
    if spec.family != "ogbench":
        episodes["normalized_score"] = normalized_score(spec, episodes["return"].to_numpy())
    return episodes.assign(budget=cfg.budget, study=cfg.study, variant=cfg.variant, step=int(checkpoint["step"]),
                           config_hash=checkpoint["config_hash"], episodes_per_task=cfg.eval.episodes_per_task,
                           max_steps=eval_horizon(spec, max_steps))


def evaluate_run(run_dir: str | Path, cfg: RunConfig | None = None, device: str = "cpu",
                 max_steps: int | None = None, partial: bool = False) -> dict[str, float]:
    """Evaluate every checkpoint the run's schedule names into `eval_episodes.csv` (+ `_summary.csv`).

    `cfg` overrides the run's recorded evaluation settings (episodes, envs); returns the final checkpoint's headline.
    `partial` evaluates only checkpoints/last.pt of an unfinished run, its rows labelled with the step it reached.
    """
    run_dir = Path(run_dir)
    cfg = cfg or read_run_config(run_dir)
    frames = []
    if partial:
        _, payload = read_run_checkpoint(run_dir, device=device)
        final_step = int(payload["step"])
        frames.append(evaluate_agent(_agent_from(cfg, payload, device), cfg, payload, max_steps))
    else:
        final_step = cfg.train.steps
        # One pool for every checkpoint: OGBench envs take 1-2 s each to build, and each episode resets its env from
        # its own seed, so sharing changes no result.
        spec = get_spec(cfg.dataset)
        jobs = len(eval_tasks(spec)) * cfg.eval.episodes_per_task
        with make_env_pool(spec, min(cfg.eval.num_envs, jobs), max_steps, cfg.eval.workers) as pool:
            for step in cfg.eval.steps(cfg.train.steps):
                _, payload = read_run_checkpoint(run_dir, step, device)
                frames.append(evaluate_agent(_agent_from(cfg, payload, device), cfg, payload, max_steps, pool))
    episodes = pd.concat(frames, ignore_index=True)
    spec = get_spec(cfg.dataset)
    write_results(episodes, spec, run_dir / "eval_episodes.csv")
    final = episodes[episodes["step"] == final_step]
    overall = summarize(final, spec).query("task == 'all'").iloc[0]
    return {"success": float(overall["success"]), "score": float(overall["score"]), "episodes": len(final)}
