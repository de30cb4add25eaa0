"""What every method (QHyer and each baseline) provides to the shared trainer and evaluation layer.

A method is a typed config dataclass plus an `Agent`: the agent owns its networks, optimisers and LR
schedulers and performs one update per call; the trainer (`qhyer/trainer.py`) owns the loop, the sampler,
the RNGs, checkpoints, logging and evaluation. Keeping that split means resume, multi-seed and device
placement are written once, in the trainer.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_map_only

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.rollout.policy import StepInput

# train.precision → the autocast dtype of the loss functions (None: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
# train.compile_mode → torch.compile's `mode`; reduce-overhead adds CUDA graphs on CUDA (on CPU it compiles as default)
COMPILE_MODES = ("default", "reduce-overhead")


def dataset_family(spec: DatasetSpec) -> str:
    """Key of per-family defaults: 'ogbench_play', 'ogbench_noisy', 'maze2d' or 'antmaze'."""
    return f"ogbench_{spec.kind}" if spec.family == "ogbench" else spec.family


@dataclass
class MethodConfig:
    """Fields every method has. `None` in a subclass field means "take the value for the dataset family"
    from that class's FAMILY_DEFAULTS (e.g. the paper's τ = 0.9 for play and 0.95 for noisy)."""

    name: str = "base"
    batch_size: int = 256
    goal_rep: str = "full"  # 'full' observation as goal (OGBench default) or 'task' (goal part only)

    FAMILY_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}

    def for_family(self, family: str) -> MethodConfig:
        """A copy with every `None` field filled from FAMILY_DEFAULTS[family]."""
        if self.goal_rep not in ("full", "task"):
            raise ConfigError(f"goal_rep must be 'full' or 'task' (got '{self.goal_rep}')")
        defaults = self.FAMILY_DEFAULTS.get(family, {})
        filled = {}
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None:
                if f.name not in defaults:
                    raise ConfigError(f"{self.name}.{f.name} has no default for dataset family '{family}'",
                                      f"set it on the command line, e.g. method.{f.name}=...")
                filled[f.name] = defaults[f.name]
        return dataclasses.replace(self, **filled)

    def for_dataset(self, spec: DatasetSpec) -> MethodConfig:
        """`for_family` of the dataset's family; a method whose own protocol differs per dataset overrides it."""
        return self.for_family(dataset_family(spec))

    def training_data(self, dataset: EpisodeDataset) -> EpisodeDataset:
        """The episodes this method trains on (a baseline's source protocol cuts them as its own loader does)."""
        return dataset

    def data_info(self, spec: DatasetSpec, dataset: EpisodeDataset) -> DataInfo:
        """Sizes and standardisation statistics of the training data."""
        return DataInfo.from_dataset(spec, dataset, self.goal_rep)

    def for_budget(self, steps: int) -> MethodConfig:
        """A copy whose whole-run schedules last the run's `steps` updates (baselines.sequence.CosineDecayConfig)."""
        return self


@dataclass
class DataInfo:
    """What a model needs to know about its dataset; statistics become buffers saved in checkpoints."""

    spec: DatasetSpec
    obs_dim: int
    action_dim: int
    goal_dim: int
    obs_mean: np.ndarray
    obs_std: np.ndarray
    goal_mean: np.ndarray
    goal_std: np.ndarray
    max_episode_length: int  # longest training episode: timestep embeddings exist only for timesteps seen in
    #                          training; later evaluation steps reuse the last one (QT's `max_ep_len - 1` cutoff)

    @classmethod
    def from_dataset(cls, spec: DatasetSpec, dataset: EpisodeDataset, goal_rep: str) -> DataInfo:
        stats = dataset.statistics()
        dims = dataset.goal_dims if goal_rep == "task" else np.arange(dataset.obs_dim)
        return cls(spec=spec, obs_dim=dataset.obs_dim, action_dim=dataset.action_dim, goal_dim=len(dims),
                   obs_mean=stats["obs_mean"], obs_std=stats["obs_std"], goal_mean=stats["obs_mean"][dims],
                   goal_std=stats["obs_std"][dims],
                   max_episode_length=int(np.diff(dataset.episode_starts, append=len(dataset)).max()))


class Agent(nn.Module):
    """Base class: input standardisation buffers, optimiser bookkeeping and train-state (de)serialisation."""

    sampler_kind: ClassVar[str]  # 'window' (sequence models) or 'transition' (MLP agents)
    # The methods whose calls are an update's forward and loss computation (validation calls them too); the backward,
    # gradient clipping and optimizer steps happen outside them. `wrap_loss_functions` autocasts and compiles these.
    loss_functions: ClassVar[tuple[str, ...]] = ("losses",)
    # Float32 islands under bf16: "module.method" calls run with autocast off on float32 inputs. Values and critics
    # are regression targets whose differences matter (TD errors, advantages): a value near 1/(1−γ) = 100 has
    # bfloat16 spacing 0.5. Modules set to None (a variant without that critic) are skipped.
    float32_calls: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: MethodConfig, info: DataInfo):
        super().__init__()
        self.cfg, self.info = cfg, info
        for key in ("obs_mean", "obs_std", "goal_mean", "goal_std"):
            self.register_buffer(key, torch.as_tensor(getattr(info, key), dtype=torch.float32))
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # --- contract ------------------------------------------------------------------------------------
    def make_sampler(self, dataset: EpisodeDataset, seed: int):
        """The shared sampler (qhyer.data.samplers) configured for this method."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One gradient step on `batch` (already on the agent's device); returns scalar metrics."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics on a held-out batch (losses, instrumentation); none by default."""
        return {}

    def policy(self):
        """A `qhyer.rollout.Policy` acting with this agent's current weights."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------------------
    def wrap_loss_functions(self, precision: str = "fp32", compile_mode: str | None = None) -> None:
        """Run `loss_functions` under autocast to PRECISIONS[precision] and/or torch.compile(mode=compile_mode) (None:
        eager). Call once the agent is on its device. Instance attributes shadow the methods, so `update` and
        `validation_metrics` call the wrapped functions; parameters, gradients and optimizer state stay float32.

        reduce-overhead: the outputs are cloned, because a CUDA-graph replay reuses its output memory, and a new
        graph "generation" starts whenever a compiled function is called with no backward pending, e.g. QT's
        actor_loss after the critic's step, while its critic metrics are still to be read."""
        dtype = PRECISIONS[precision]
        for path in self.float32_calls if dtype is not None else ():
            owner_name, method = path.split(".")
            owner = getattr(self, owner_name)
            if owner is not None:
                setattr(owner, method, float32_call(getattr(owner, method), self.device.type))
        for name in self.loss_functions:
            fn = getattr(self, name)
            if dtype is not None:
                fn = autocast(fn, self.device.type, dtype)
            if compile_mode is not None:
                fn = torch.compile(fn, mode=compile_mode)
                if compile_mode == "reduce-overhead":
                    fn = cloned_outputs(fn)
            setattr(self, name, fn)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def normalize_goal(self, goal: torch.Tensor) -> torch.Tensor:
        return (goal - self.goal_mean) / self.goal_std

    @property
    def device(self) -> torch.device:
        return self.obs_mean.device

    def train_state(self) -> dict[str, Any]:
        return {"modules": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}}

    def load_train_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])


def autocast(fn: Callable, device_type: str, dtype: torch.dtype) -> Callable:
    """`fn` run under torch.autocast (a context inside the function, so torch.compile traces it into the graph)."""
    @functools.wraps(fn)
    def autocast_fn(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            return fn(*args, **kwargs)
    return autocast_fn


def float32_call(fn: Callable, device_type: str) -> Callable:
    """`fn` with autocast off and its floating-point tensor arguments cast to float32."""
    @functools.wraps(fn)
    def float32_fn(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return fn(*tree_map_only(torch.Tensor, lambda t: t.float() if t.is_floating_point() else t, args),
                      **kwargs)
    return float32_fn


def cloned_outputs(fn: Callable) -> Callable:
    """`fn` whose tensor outputs are fresh copies (differentiable: gradients flow through the clones)."""
    @functools.wraps(fn)
    def cloning_fn(*args, **kwargs):
        return tree_map_only(torch.Tensor, torch.clone, fn(*args, **kwargs))
    return cloning_fn


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then constant LR (DT, `kzl/decision-transformer` gym/experiment.py)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup_steps)))


def window_from_history(step: StepInput, context_len: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The last `context_len` steps of each episode as a left-padded window with the WindowSampler's keys.

    The current step's action is unknown, so its slot holds zeros (sequence models predict it from the
    tokens before it; causality guarantees the placeholder is never read).
    """
    obs, acts = step.history_observations, step.history_actions      # (B, t+1, O), (B, t, A)
    b, length = obs.shape[:2]
    k = min(context_len, length)
    actions = np.concatenate([acts, np.zeros((b, 1, acts.shape[-1]), acts.dtype)], axis=1)[:, -k:]
    pad = context_len - k
    window = {
        "observations": np.pad(obs[:, -k:], ((0, 0), (pad, 0), (0, 0))),
        "actions": np.pad(actions, ((0, 0), (pad, 0), (0, 0))),
        "timesteps": np.pad(np.broadcast_to(np.arange(length - k, length), (b, k)), ((0, 0), (pad, 0))),
        "mask": np.pad(np.ones((b, k), bool), ((0, 0), (pad, 0))),
        "goals": step.goals,
    }
    return {key: torch.as_tensor(np.ascontiguousarray(v), device=device) for key, v in window.items()}


def metrics_to_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """An update's scalar metrics as floats, with one device→host copy for all of them."""
    values = torch.stack([torch.as_tensor(v).detach().float() for v in metrics.values()]).tolist()
    return dict(zip(metrics, values, strict=True))
