"""Goal-conditioned IQL with a DDPG+BC actor (OGBench `impls/agents/gciql.py`, `actor_loss='ddpgbc'`).

V(s, g) is fitted to an upper expectile of min(Q1, Q2) from a Polyak target critic, Q(s, a, g) to
r + γ·mask·V(s', g), and the actor maximises the normalised Q of its mean action plus α·log π(a_data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from baselines.markov import GCActor, MarkovAgent, ValueConfig, ValueEnsemble, expectile_loss, frozen_call, frozen_copy
from qhyer.agent import DataInfo


@dataclass
class GCIQLConfig(ValueConfig):
    name: str = "gciql"
    expectile: float = 0.9     # gciql.py get_config: expectile
    alpha: float | None = None  # DDPG+BC BC coefficient; per family below (impls/hyperparameters.sh)

    FAMILY_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "ogbench_play": {"alpha": 1.0},    # hyperparameters.sh: cube-*/puzzle-*-play `--agent.alpha=1.0`
        "ogbench_noisy": {"alpha": 0.03},  # hyperparameters.sh: cube-*/puzzle-*-noisy `--agent.alpha=0.03`
        # D4RL mazes have no OGBench entry; we take OGBench's closest datasets (an assumption):
        "maze2d": {"alpha": 0.003},        # pointmaze-*-navigate `--agent.alpha=0.003` (same point-mass robot)
        "antmaze": {"alpha": 0.3},         # antmaze-*-navigate `--agent.alpha=0.3` (= get_config default)
    }


class GCIQLAgent(MarkovAgent):
    float32_calls = ("value.forward", "critic.forward", "target_critic.forward")  # qhyer.agent.Agent

    def __init__(self, cfg: GCIQLConfig, info: DataInfo):
        super().__init__(cfg, info)
        obs, goal, act = info.obs_dim, info.goal_dim, info.action_dim
        self.value = ValueEnsemble(obs + goal, cfg.value_hidden_dims, 1, cfg.layer_norm)         # V(s, g)
        self.critic = ValueEnsemble(obs + goal + act, cfg.value_hidden_dims, 2, cfg.layer_norm)  # Q1, Q2(s, g, a)
        self.target_critic = frozen_copy(self.critic)  # OGBench keeps a target for the critic only
        self.actor = GCActor(obs + goal, cfg.actor_hidden_dims, act)
        self.init_optimizer()

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_critic, self.critic)]

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        obs, actions, next_obs = batch["observations"], batch["actions"], batch["next_observations"]
        value_goals, actor_goals = batch["value_goals"], batch["actor_goals"]

        # Value: the expectile of the target critic over dataset actions (IQL's in-sample max).
        with torch.no_grad():
            q_target = self.target_critic(obs, value_goals, actions).min(0).values  # (B,)
            next_v = self.value(next_obs, value_goals)[0]                           # (B,)
        v = self.value(obs, value_goals)[0]                                         # (B,)
        value_loss = expectile_loss(q_target - v, q_target - v, cfg.expectile).mean()

        # Critic: both heads regress to r + γ·mask·V(s', g) (mask = 0 once the goal is reached).
        td_target = batch["rewards"] + cfg.discount * batch["masks"] * next_v    # (B,)
        q = self.critic(obs, value_goals, actions)                               # (2, B)
        critic_loss = (q - td_target).pow(2).sum(0).mean()

        # Actor (DDPG+BC): the critic is a constant here; dividing by mean |Q| makes α alone set the trade-off.
        mean = self.actor(obs, actor_goals)                                                   # (B, A)
        q_pi = frozen_call(self.critic, obs, actor_goals, mean.clamp(-1.0, 1.0)).min(0).values  # (B,)
        q_loss = -q_pi.mean() / (q_pi.abs().mean().detach() + 1e-6)
        log_prob = GCActor.log_prob(mean, actions)
        bc_loss = -(cfg.alpha * log_prob).mean()
        actor_loss = q_loss + bc_loss

        return {"loss": value_loss + critic_loss + actor_loss, "value_loss": value_loss, "critic_loss": critic_loss,
                "actor_loss": actor_loss, "q_loss": q_loss, "bc_loss": bc_loss, "v_mean": v.mean(),
                "q_mean": td_target.mean(), "bc_log_prob": log_prob.mean(), "mse": (mean - actions).pow(2).mean()}
