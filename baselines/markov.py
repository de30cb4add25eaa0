"""Shared pieces of the Markov goal-conditioned MLP baselines (GCIQL, HIQL, GCBC).

Networks follow OGBench's JAX reference (seohongpark/ogbench, `impls/utils/networks.py`): GELU MLPs (flax's
default tanh approximation), LayerNorm after every hidden activation in value networks only, Xavier-uniform
kernels (flax `variance_scaling(1, 'fan_avg', 'uniform')`) with zero biases, and Gaussian actors with a constant
unit standard deviation whose mean head starts at scale 1e-2 (`GCActor(const_std=True)`, no tanh squashing).
Inputs are the raw observations and goals: OGBench's `impls` standardise nothing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from qhyer.agent import Agent, MethodConfig, metrics_to_floats
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.samplers import GoalSampling, TransitionSampler
from qhyer.errors import ConfigError
from qhyer.models.layers import GaussianActionHead, mlp
from qhyer.rollout.policy import StepInput


@dataclass
class MarkovConfig(MethodConfig):
    """Fields of every OGBench MLP agent (`impls/agents/{gcbc,gciql,hiql}.py`, `get_config`).

    The goal-relabelling fields keep OGBench's names and meaning (`impls/utils/datasets.py`,
    `GCDataset.sample_goals`): each goal is the current state with p_curgoal, a later state of the same trajectory
    with p_trajgoal (offset ~ Geometric(1 − discount) if geom_sample, else uniform), a random dataset state with
    p_randomgoal. Value goals also define the reward (0 at the goal, else −1) and mask.
    """

    batch_size: int = 1024                                # get_config: batch_size
    lr: float = 3e-4                                      # get_config: lr (Adam)
    actor_hidden_dims: tuple[int, ...] = (512, 512, 512)  # get_config: actor_hidden_dims
    discount: float = 0.99                                # get_config: discount (also the geometric goal offset)
    value_p_curgoal: float = 0.2                          # gciql/hiql get_config: value_p_curgoal
    value_p_trajgoal: float = 0.5                         # gciql/hiql get_config: value_p_trajgoal
    value_p_randomgoal: float = 0.3                       # gciql/hiql get_config: value_p_randomgoal
    value_geom_sample: bool = True                        # gciql/hiql get_config: value_geom_sample
    actor_p_curgoal: float = 0.0                          # get_config (all three): actor_p_curgoal
    actor_p_trajgoal: float = 1.0                         # get_config (all three): actor_p_trajgoal
    actor_p_randomgoal: float = 0.0                       # get_config (all three): actor_p_randomgoal
    actor_geom_sample: bool = False                       # get_config (all three): actor_geom_sample

    def __post_init__(self) -> None:
        # A bad probability is a ConfigError when the config is made, not when training starts.
        for kind, make in (("value", self.value_goals), ("actor", self.actor_goals)):
            try:
                make()
            except ConfigError as err:
                raise ConfigError(f"{self.name} {kind} goals (method.{kind}_p_*, method.discount): {err}") from err

    def value_goals(self) -> GoalSampling:
        return goal_sampling(self.value_p_curgoal, self.value_p_trajgoal, self.value_p_randomgoal,
                             self.value_geom_sample, self.discount)

    def actor_goals(self) -> GoalSampling:
        return goal_sampling(self.actor_p_curgoal, self.actor_p_trajgoal, self.actor_p_randomgoal,
                             self.actor_geom_sample, self.discount)


def goal_sampling(p_curgoal: float, p_trajgoal: float, p_randomgoal: float, geom_sample: bool,
                  discount: float) -> GoalSampling:
    """OGBench's (p_curgoal, p_trajgoal, p_randomgoal, geom_sample) as our sampler's relabelling modes: the
    trajectory probability goes to the geometric or the uniform future mode."""
    return GoalSampling(p_current=p_curgoal, p_future_geometric=p_trajgoal if geom_sample else 0.0,
                        p_future_uniform=0.0 if geom_sample else p_trajgoal, p_random=p_randomgoal,
                        discount=discount)


@dataclass
class ValueConfig(MarkovConfig):
    """Fields shared by the value-based agents (GCIQL, HIQL)."""

    value_hidden_dims: tuple[int, ...] = (512, 512, 512)  # get_config: value_hidden_dims
    layer_norm: bool = True                               # get_config: layer_norm (value nets only)
    tau: float = 0.005                                    # get_config: tau (target Polyak rate)


class TanhGELU(nn.GELU):
    """flax's `nn.gelu` defaults to the tanh approximation."""

    def __init__(self) -> None:
        super().__init__(approximate="tanh")


# flax `nn.LayerNorm`'s default epsilon, which OGBench's `MLP` keeps (PyTorch's default is 1e-5).
FLAX_LAYER_NORM_EPS = 1e-6


def ogbench_mlp(in_dim: int, hidden: Iterable[int], out_dim: int, layer_norm: bool = False,
                final_scale: float = 1.0) -> nn.Sequential:
    """OGBench `MLP` with its initialisation; `final_scale` is the variance scale of the output layer
    (`variance_scaling(s, 'fan_avg', 'uniform')` is Xavier-uniform with gain √s)."""
    net = mlp(in_dim, tuple(hidden), out_dim, layer_norm=layer_norm, activation=TanhGELU,
              layer_norm_eps=FLAX_LAYER_NORM_EPS)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer in linears:
        nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(final_scale) if layer is linears[-1] else 1.0)
        nn.init.zeros_(layer.bias)
    return net


class ValueEnsemble(nn.Module):
    """`n` independent value MLPs on the concatenated inputs (OGBench `GCValue`; `ensemble=True` is n = 2).

    forward(*inputs): each (B, ·) → (n, B).
    """

    def __init__(self, in_dim: int, hidden: Iterable[int], n: int, layer_norm: bool):
        super().__init__()
        self.members = nn.ModuleList(ogbench_mlp(in_dim, hidden, 1, layer_norm) for _ in range(n))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat(inputs, dim=-1)
        return torch.stack([member(x).squeeze(-1) for member in self.members])


class GCActor(nn.Module):
    """Gaussian policy N(mean, I) (OGBench `GCActor(const_std=True)`); forward(*inputs) → mean (B, out).

    The mean is also the deterministic evaluation action (OGBench evaluates with `eval_temperature=0`).
    """

    def __init__(self, in_dim: int, hidden: Iterable[int], out_dim: int):
        super().__init__()
        self.net = ogbench_mlp(in_dim, hidden, out_dim, final_scale=1e-2)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat(inputs, dim=-1))

    @staticmethod
    def log_prob(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unit-std Gaussian log-density summed over the last dim, (B, D) → (B,)."""
        return GaussianActionHead.log_prob(mean, torch.zeros_like(mean), target)


def expectile_loss(adv: torch.Tensor, diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric L2: weight τ where adv ≥ 0 and 1 − τ elsewhere (IQL; OGBench `expectile_loss`).

    HIQL takes the sign from a target-network advantage but the residual from the online network, so the two
    arguments are separate."""
    weight = (expectile - (adv < 0).to(diff.dtype)).abs()  # |τ − 1{adv < 0}|, in diff's dtype (float64 too)
    return weight * diff.pow(2)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: same initial weights, never touched by the optimiser."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target ← τ·online + (1 − τ)·target."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)


def frozen_call(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """`module(*inputs)` with its weights treated as constants: gradients reach the inputs only
    (OGBench calls such networks without `grad_params`)."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, inputs)


class MarkovAgent(Agent):
    """One Adam over all online weights and one joint step on the sum of the losses, as OGBench's single
    `TrainState`. Subclasses define `losses` (the key 'loss' is minimised), their target pairs, and `act`
    unless they act through one flat actor `self.actor`."""

    sampler_kind = "transition"

    def init_optimizer(self) -> None:
        """Call at the end of a subclass `__init__`, once every module exists."""
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizers = {"adam": torch.optim.Adam(params, lr=self.cfg.lr)}

    # --- method-specific ---------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def act(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Deterministic actions (B, A), unclipped; by default the mean of the flat actor `self.actor`."""
        return self.actor(observations, goals)

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) networks to Polyak-average at every update."""
        return []

    def subgoal_steps(self) -> int | None:
        return None

    # --- contract ----------------------------------------------------------------------------------
    def make_sampler(self, dataset: EpisodeDataset, seed: int) -> TransitionSampler:
        return TransitionSampler(dataset, value_goals=self.cfg.value_goals(), actor_goals=self.cfg.actor_goals(),
                                 goal_rep=self.cfg.goal_rep, seed=seed, subgoal_steps=self.subgoal_steps())

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        metrics = self.losses(batch)
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        # OGBench averages the weights from before this step into the target (`target_update` reads
        # `self.network.params`, the pre-update copy), so the average happens before `opt.step()`.
        for target, online in self.target_pairs():
            polyak_update(target, online, self.cfg.tau)
        opt.step()
        return metrics_to_floats(metrics)

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return metrics_to_floats(self.losses(batch))

    def policy(self) -> MarkovPolicy:
        return MarkovPolicy(self)



class MarkovPolicy:
    """`qhyer.rollout.Policy` for agents that see only (s_t, g): one batched forward pass per step."""

    def __init__(self, agent: MarkovAgent):
        self.agent = agent
        self.goal_rep = agent.cfg.goal_rep

    def reset(self, batch_size: int) -> None:
        """No recurrent state."""

    @torch.no_grad()
    def act(self, step: StepInput) -> np.ndarray:
        device = self.agent.device
        obs = torch.as_tensor(step.observations, dtype=torch.float32, device=device)    # (B, O)
        goals = torch.as_tensor(step.goals, dtype=torch.float32, device=device)         # (B, G)
        return self.agent.act(obs, goals).clamp(-1.0, 1.0).cpu().numpy()               # (B, A)
