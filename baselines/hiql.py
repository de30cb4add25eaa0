"""Hierarchical IQL (OGBench `impls/agents/hiql.py`; Park et al., arXiv 2307.11949), state-based variant.

A goal-conditioned value V(s, φ([s; g])) learns the subgoal representation φ (rep_dim 10, length-normalised
to √rep_dim). A high-level policy predicts φ([s; w]) of the state w `subgoal_steps` ahead, and a low-level
policy maps (s, φ([s; w])) to actions; both are trained by AWR with advantages from V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from baselines.markov import GCActor, MarkovAgent, ValueConfig, ValueEnsemble, expectile_loss, frozen_copy, ogbench_mlp
from qhyer.agent import DataInfo
from qhyer.errors import ConfigError


@dataclass
class HIQLConfig(ValueConfig):
    name: str = "hiql"
    expectile: float = 0.7           # hiql.py get_config: expectile
    low_alpha: float = 3.0           # get_config: low_alpha (AWR temperature); hyperparameters.sh passes 3.0
    high_alpha: float = 3.0          # get_config: high_alpha; hyperparameters.sh passes 3.0
    rep_dim: int = 10                # get_config: rep_dim
    subgoal_steps: int | None = None  # per family below

    FAMILY_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        # hyperparameters.sh: `--agent.subgoal_steps=10` on every manipulation dataset
        "ogbench_play": {"subgoal_steps": 10},
        "ogbench_noisy": {"subgoal_steps": 10},
        # D4RL mazes: OGBench's pointmaze/antmaze runs keep get_config's 25 (no override in hyperparameters.sh),
        # as does the original HIQL on D4RL antmaze (seohongpark/HIQL README: `--way_steps 25`).
        "maze2d": {"subgoal_steps": 25},
        "antmaze": {"subgoal_steps": 25},
    }


def length_normalize(x: torch.Tensor) -> torch.Tensor:
    """x ↦ √d · x / ‖x‖ (OGBench `LengthNormalize`). The floor on ‖x‖ is ours: with zero biases at init an
    all-zero input [s; g] maps to x = 0, which would otherwise turn into NaN."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6) * x.shape[-1] ** 0.5


class HIQLAgent(MarkovAgent):
    float32_calls = ("goal_rep.forward", "value.forward", "target_value.forward")  # qhyer.agent.Agent

    def __init__(self, cfg: HIQLConfig, info: DataInfo):
        if cfg.goal_rep != "full":
            # A high-level target is both a state (in V(target, g)) and a subgoal (in φ([s; target])); the
            # sampler returns it in the goal representation only, so task-part goals cannot feed V.
            raise ConfigError("HIQL needs goal_rep='full' (OGBench's setting)", "set method.goal_rep=full")
        super().__init__(cfg, info)
        obs, goal, act, rep = info.obs_dim, info.goal_dim, info.action_dim, cfg.rep_dim
        # φ([s; g]) before length normalisation; trained only through the value loss (`low_actor_rep_grad=False`).
        self.goal_rep = ogbench_mlp(obs + goal, cfg.value_hidden_dims, rep, cfg.layer_norm)
        self.value = ValueEnsemble(obs + rep, cfg.value_hidden_dims, 2, cfg.layer_norm)  # V1, V2(s, φ([s; g]))
        # OGBench passes one φ module to value, target value and low actor ("the pre-defined shared encoder"
        # in hiql.py `create`), so the target averages the value heads only and reads the online φ.
        self.target_value = frozen_copy(self.value)
        self.low_actor = GCActor(obs + rep, cfg.actor_hidden_dims, act)    # π_l(a | s, φ([s; w]))
        self.high_actor = GCActor(obs + goal, cfg.actor_hidden_dims, rep)  # π_h(φ([s; w]) | s, g)
        self.init_optimizer()

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_value, self.value)]

    def subgoal_steps(self) -> int:
        return self.cfg.subgoal_steps

    def phi(self, obs: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Subgoal representation φ([s; g]) on the sphere of radius √rep_dim, (B, rep)."""
        return length_normalize(self.goal_rep(torch.cat([obs, goals], dim=-1)))

    def v(self, heads: nn.Module, obs: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """(2, B) values of `heads` (online or target) at V(s, φ([s; g]))."""
        return heads(obs, self.phi(obs, goals))

    def awr_weights(self, obs: torch.Tensor, next_obs: torch.Tensor, goals: torch.Tensor,
                    alpha: float) -> torch.Tensor:
        """exp(α·(V(s', g) − V(s, g))) capped at 100, with the mean of the online heads; (B,)."""
        adv = self.v(self.value, next_obs, goals).mean(0) - self.v(self.value, obs, goals).mean(0)
        return torch.exp(alpha * adv).clamp(max=100.0)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        obs, actions, next_obs = batch["observations"], batch["actions"], batch["next_observations"]
        value_goals, rewards, masks = batch["value_goals"], batch["rewards"], batch["masks"]
        low_goals, high_goals, high_targets = batch["low_goals"], batch["high_goals"], batch["high_targets"]

        # Value (IVL): the expectile weight uses target-network advantages (double-DQN-like), each online head
        # regresses to its own target head's bootstrap.
        with torch.no_grad():
            next_v_heads = self.v(self.target_value, next_obs, value_goals)               # (2, B)
            q = rewards + cfg.discount * masks * next_v_heads.min(0).values               # (B,)
            adv = q - self.v(self.target_value, obs, value_goals).mean(0)                 # (B,)
            q_heads = rewards + cfg.discount * masks * next_v_heads                       # (2, B)
        v_heads = self.v(self.value, obs, value_goals)                                    # (2, B)
        value_loss = expectile_loss(adv, q_heads - v_heads, cfg.expectile).mean(1).sum()

        with torch.no_grad():
            low_weights = self.awr_weights(obs, next_obs, low_goals, cfg.low_alpha)
            subgoal_rep = self.phi(obs, low_goals)                                        # (B, rep)
            high_weights = self.awr_weights(obs, high_targets, high_goals, cfg.high_alpha)
            target_rep = self.phi(obs, high_targets)                                      # (B, rep)

        # Low level: AWR on dataset actions, conditioned on the subgoal's representation.
        low_mean = self.low_actor(obs, subgoal_rep)
        low_loss = -(low_weights * GCActor.log_prob(low_mean, actions)).mean()
        # High level: AWR on the representation of the state `subgoal_steps` ahead (capped at the goal).
        high_mean = self.high_actor(obs, high_goals)
        high_loss = -(high_weights * GCActor.log_prob(high_mean, target_rep)).mean()

        return {"loss": value_loss + low_loss + high_loss, "value_loss": value_loss, "low_actor_loss": low_loss,
                "high_actor_loss": high_loss, "v_mean": v_heads.mean(), "low_adv_weight": low_weights.mean(),
                "high_adv_weight": high_weights.mean(), "low_mse": (low_mean - actions).pow(2).mean(),
                "high_mse": (high_mean - target_rep).pow(2).mean()}

    def act(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        # The high policy's mean, projected onto φ's sphere like its training targets, is the low policy's goal.
        subgoal_rep = length_normalize(self.high_actor(observations, goals))
        return self.low_actor(observations, subgoal_rep)
