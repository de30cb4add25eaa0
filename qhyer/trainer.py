"""The one training loop every method runs through.

`train` validates the config, loads the data, builds the agent and runs the loop; the run folder it trains into —
its config, checkpoints, lock, resume rules, records and evaluation — is qhyer/run_folder.py's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from qhyer.agent import COMPILE_MODES, PRECISIONS, Agent, DataInfo
from qhyer.data.registry import DatasetSpec, get_spec
from qhyer.errors import ConfigError, DataError, DivergedError, Terminated, remembered_interrupts
from qhyer.run_folder import (
    CHANGED_CONFIG_ACTIONS,
    MetricsLog,
    RunConfig,
    TrainState,
    build_agent,
    checkpoint_path,
    data_hashes,
    failure_kept,
    finish_run,
    locked_run_dir,
    refuse_retry_of_failure,
    run_identity,
    save_checkpoint,
    start_or_resume,
)
from qhyer.runs import get_study
from qhyer.workflow_config import method_field_problems


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is visible", "use train.device=cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name} is not a device name", "use auto, cpu, cuda or cuda:<index>") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device={name}: the harness runs on cpu or cuda", "use auto, cpu or cuda")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"train.device={name} but {torch.cuda.device_count()} CUDA device(s) are visible",
                          "use train.device=cuda (the first) or a visible index")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_split(spec: DatasetSpec, split: str, data_dir: str):
    from qhyer.data.readers import load_dataset

    return load_dataset(spec.name, split=split, data_dir=Path(data_dir))


def _validation_split(spec: DatasetSpec, cfg: RunConfig) -> Any:
    """The `-val` file's dataset, or None when the dataset has none."""
    try:
        return _load_split(spec, "val", cfg.data_dir)
    except DataError:
        return None


def _validation_batches(agent: Agent, val_data: Any, cfg: RunConfig) -> list[dict[str, torch.Tensor]]:
    """Fixed validation batches (from the `-val` file when there is one) so curves are comparable over time."""
    if val_data is None:
        return []
    sampler = agent.make_sampler(val_data, seed=10_000 + cfg.seed)
    return [sampler.sample(cfg.method.batch_size) for _ in range(cfg.train.val_batches)]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def check_run_config(cfg: RunConfig) -> None:
    """Reject values the loop cannot run with, before any file is written or data is loaded."""
    loop = cfg.train
    for name in ("steps", "log_every", "val_every", "checkpoint_every", "attempt"):
        if getattr(loop, name) < 1:
            raise ConfigError(f"train.{name} must be at least 1 (got {getattr(loop, name)})")
    if loop.val_batches < 0 or loop.threads < 0:
        raise ConfigError("train.val_batches and train.threads must be >= 0")
    if loop.on_changed_config not in CHANGED_CONFIG_ACTIONS:
        raise ConfigError(f"train.on_changed_config must be one of {', '.join(CHANGED_CONFIG_ACTIONS)} "
                          f"(got '{loop.on_changed_config}')")
    if loop.precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)} (got '{loop.precision}')")
    if loop.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode must be one of {', '.join(COMPILE_MODES)} (got '{loop.compile_mode}')")
    if loop.compile_mode != "default" and not loop.compile:
        raise ConfigError(f"train.compile_mode={loop.compile_mode} has no effect without train.compile=true")
    problems = method_field_problems(cfg.method)
    if problems:
        raise ConfigError("; ".join(problems))
    get_study(cfg.study)
    if cfg.seed < 0:
        raise ConfigError(f"seed must be >= 0 (got {cfg.seed})", "numpy seeds are non-negative")
    cfg.eval.check(loop.steps)


def train(cfg: RunConfig) -> Path:
    """Train one method × dataset × seed into `cfg.run_dir`, then evaluate it when `cfg.eval.enabled`.

    The config is validated before the run folder is created; the folder is then locked for the whole run
    (qhyer.run_folder.locked_run_dir), so a second writer fails before loading any data.
    """
    spec = get_spec(cfg.dataset)
    check_run_config(cfg)
    family_method = cfg.method.for_dataset(spec)
    method_cfg = family_method.for_budget(cfg.train.steps)
    cfg = dataclasses.replace(cfg, method=method_cfg, dataset=spec.name)
    device = resolve_device(cfg.train.device)
    if cfg.train.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        # autocast would fall back to float32 with a warning, and the run would be recorded as bf16
        raise ConfigError(f"train.precision=bf16 but {torch.cuda.get_device_name(device)} has no bfloat16 support",
                          "use train.precision=fp32")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    run_dir = Path(cfg.run_dir)
    with locked_run_dir(run_dir):
        refuse_retry_of_failure(run_dir, cfg.train.attempt)
        seed_everything(cfg.seed)
        dataset = method_cfg.training_data(_load_split(spec, "train", cfg.data_dir))
        info = method_cfg.data_info(spec, dataset)
        _check_statistics(info, dataset.source)
        agent = build_agent(method_cfg, info, device)
        agent.wrap_loss_functions(cfg.train.precision, cfg.train.compile_mode if cfg.train.compile else None)
        state = TrainState(agent=agent, sampler=agent.make_sampler(dataset, seed=cfg.seed))
        val_data = _validation_split(spec, cfg)
        _check_batch_size(method_cfg.batch_size, dataset, val_data)
        val_batches = _validation_batches(agent, val_data, cfg)
        hashes = data_hashes(dataset, val_data)
        identity = run_identity(cfg, family_method, dataset, hashes)
        resumed = start_or_resume(state, cfg, identity, run_dir, device)
        started = time.perf_counter()
        with failure_kept(run_dir):
            _train_loop(state, cfg, info, identity, val_batches, run_dir, device)
            finish_run(run_dir, cfg, dataset, state, identity, hashes, resumed, time.perf_counter() - started, device)
    return run_dir


def _check_batch_size(batch_size: int, *datasets: Any) -> None:
    """A batch drawn from fewer rows than it holds would repeat rows (or, for windows, wait forever)."""
    for data in filter(None, datasets):
        if batch_size > len(data):
            raise ConfigError(f"method.batch_size={batch_size} exceeds the {len(data)} rows of {data.source}",
                              "lower method.batch_size or generate a larger dataset")


def _check_statistics(info: DataInfo, source: Any) -> None:
    """Standardisation by an infinite std would silently feed the model zeros; refuse such data instead."""
    for key in ("obs_mean", "obs_std"):
        if not np.isfinite(getattr(info, key)).all():
            raise DataError(f"{source}: the observations' {key.split('_')[1]} is not finite (values beyond float32's "
                            "range, or NaN/inf in the file)", "regenerate or fix the dataset file")


def _train_loop(state: TrainState, cfg: RunConfig, info: DataInfo, identity: dict[str, Any],
                val_batches: list[dict[str, torch.Tensor]], run_dir: Path, device: torch.device) -> None:
    agent, loop = state.agent, cfg.train
    log = MetricsLog(run_dir, state.step)
    eval_steps = set(cfg.eval.steps(loop.steps))
    with remembered_interrupts() as check_interrupted, contextlib.closing(log):
        bar = tqdm(total=loop.steps, initial=state.step, disable=not loop.progress,
                   desc=f"{cfg.method.name} {cfg.dataset} seed {cfg.seed}", dynamic_ncols=True)
        while state.step < loop.steps:
            try:
                check_interrupted()
            except Terminated as stop:  # SLURM's time limit or scancel: keep the work done so far
                save_checkpoint(state, checkpoint_path(run_dir), info, identity, loop.steps)
                raise Terminated(stop.signum, f"stopped by {signal.Signals(stop.signum).name} at step {state.step} "
                                              f"of {loop.steps}; checkpoint written to {checkpoint_path(run_dir)} — "
                                              "rerun the same command to resume") from None
            agent.train()
            metrics = agent.update(_to(state.sampler.sample(cfg.method.batch_size), device), state.step)
            state.step += 1
            _check_finite(metrics, state.step)
            bar.update(1)
            if state.step % loop.log_every == 0 or state.step == loop.steps:
                log.write(state.step, "train", metrics)
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:3]})
            if val_batches and (state.step % loop.val_every == 0 or state.step == loop.steps):
                log.write(state.step, "val", _validate(agent, val_batches, device))
            if state.step in eval_steps and state.step != loop.steps:
                save_checkpoint(state, checkpoint_path(run_dir, state.step), info, identity, loop.steps,
                                weights_only=True)
            if state.step % loop.checkpoint_every == 0 or state.step == loop.steps:
                save_checkpoint(state, checkpoint_path(run_dir), info, identity, loop.steps)
        bar.close()


def _check_finite(metrics: dict[str, float], step: int) -> None:
    """Stop at the first non-finite loss term (a non-finite gradient shows up in the next step's loss)."""
    bad = [f"{key}={value}" for key, value in metrics.items() if not math.isfinite(value)]
    if bad:
        raise DivergedError(f"training diverged at step {step}: non-finite {', '.join(bad)}",
                            "the run is not finished and its last checkpoint is from before; check the data and "
                            "lower method.lr or batch-size-dependent settings, then train into a new run_dir")


def _validate(agent: Agent, batches: list[dict[str, torch.Tensor]], device: torch.device) -> dict[str, float]:
    agent.eval()
    totals: dict[str, float] = {}
    # Validation must not advance the training RNG streams, or a resumed run would diverge.
    with torch.random.fork_rng(devices=[]):
        for batch in batches:
            for key, value in agent.validation_metrics(_to(batch, device)).items():
                totals[key] = totals.get(key, 0.0) + value / len(batches)
    return totals


