"""Implicit Q-Learning (Kostrikov, Nair & Levine 2021, arXiv 2110.06169), reward-based and not goal-conditioned,
as the IQL number the card quotes for AntMaze was measured.

Follows the authors' JAX code (ikostrikov/implicit_q_learning, commit 09d7002; files and lines cited below; CORL's
`algorithms/offline/iql.py` is the same algorithm in PyTorch). One update is three gradient steps in a fixed
order (learner.py:32-39, `_update_jit`):
1. V(s) ← expectile τ of min(Q1, Q2)(s, a) of the *target* critic over dataset actions (critic.py:13-29);
2. the actor ← advantage-weighted regression, weights exp(β·(Q_target(s, a) − V_new(s))) capped at 100, with the
   value network just updated (actor.py:9-30);
3. Q1, Q2 ← r + γ·mask·V_new(s') (critic.py:32-50); then the target critic takes a Polyak step towards the
   *updated* critic (learner.py:17-22, 39).
Rewards are the dataset's stored ones plus `reward_shift` (AntMaze: r − 1, train_offline.py:68-69); masks are
1 − the stored `terminals` (dataset_utils.py:97). Observations are not standardised (the reference feeds raw
observations). Evaluation is deterministic: the actor's mean (evaluation.py: `temperature=0.0`), clipped to [−1, 1]
(learner.py:123-124).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from baselines.markov import MarkovPolicy, frozen_copy, polyak_update
from baselines.sequence import warmup_cosine_schedule
from qhyer.agent import Agent, DataInfo, MethodConfig, metrics_to_floats
from qhyer.data.episodes import EpisodeDataset
from qhyer.errors import ConfigError
from qhyer.models.layers import mlp


@dataclass
class IQLConfig(MethodConfig):
    """IQL's AntMaze configuration. Sources: configs/antmaze_config.py (`get_config`), learner.py (`Learner`
    defaults), train_offline.py (flags), policy.py, dataset_utils.py of ikostrikov/implicit_q_learning."""

    name: str = "iql"
    batch_size: int = 256                          # train_offline.py:25 `batch_size` flag
    actor_lr: float = 3e-4                         # antmaze_config.py:7
    value_lr: float = 3e-4                         # antmaze_config.py:8
    critic_lr: float = 3e-4                        # antmaze_config.py:9
    hidden_dims: tuple[int, ...] = (256, 256)      # antmaze_config.py:11 (actor, both critics and value)
    discount: float = 0.99                         # antmaze_config.py:13
    expectile: float = 0.9                         # antmaze_config.py:15 ("the actual tau for expectiles")
    temperature: float = 10.0                      # antmaze_config.py:16 (β of the AWR weights)
    tau: float = 0.005                             # antmaze_config.py:19 (target critic Polyak rate)
    # antmaze_config.py:17 `dropout_rate = None`: no dropout layers in the actor.
    max_adv_weight: float = 100.0                  # actor.py:16 `jnp.minimum(exp_a, 100.0)`
    log_std_min: float = -5.0                      # learner.py:80 `log_std_min=-5.0`
    log_std_max: float = 2.0                       # policy.py:16 LOG_STD_MAX (learner.py passes none)
    action_clip_eps: float = 1e-5                  # dataset_utils.py:78-80: dataset actions clipped to ±(1 − eps)
    # learner.py:63,85-88: the actor's learning rate decays by cosine to 0 over `max_steps` (train_offline.py:26,
    # 91: the run's 1M updates); 0 = the run's train.steps, so a short run anneals too.
    actor_lr_decay_steps: int = 0
    reward_shift: float | None = None              # per family below

    FAMILY_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "antmaze": {"reward_shift": -1.0},  # train_offline.py:68-69 `dataset.rewards -= 1.0`
        # Assumption: IQL reports no Maze2d run; its sparse Maze2d rewards are 0/1 like AntMaze's, so the same shift.
        "maze2d": {"reward_shift": -1.0},
    }

    def for_family(self, family: str) -> IQLConfig:
        if family not in self.FAMILY_DEFAULTS:
            raise ConfigError(f"iql needs a dataset's stored rewards; the {family} family stores none",
                              "train iql on a D4RL dataset (maze2d-*, antmaze-*)")
        return super().for_family(family)

    def for_budget(self, steps: int) -> IQLConfig:
        return dataclasses.replace(self, actor_lr_decay_steps=self.actor_lr_decay_steps or steps)


def relu_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """common.py:28-43 `MLP`: ReLU between layers; every kernel orthogonal with gain √2 (common.py:16-17
    `default_init`), every bias 0 (flax's default)."""
    net = mlp(in_dim, tuple(hidden), out_dim, activation=nn.ReLU)
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2.0))
            nn.init.zeros_(layer.bias)
    return net


class DoubleCritic(nn.Module):
    """value_net.py:31-42: two independent Q(s, a) MLPs; forward(obs, actions) → (2, B)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.members = nn.ModuleList(relu_mlp(obs_dim + action_dim, hidden, 1) for _ in range(2))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([observations, actions], dim=-1)
        return torch.stack([member(x).squeeze(-1) for member in self.members])


class ValueNet(nn.Module):
    """value_net.py:9-15 `ValueCritic`: V(s) → (B,)."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = relu_mlp(obs_dim, hidden, 1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations).squeeze(-1)


class IQLActor(nn.Module):
    """policy.py:19-63 with learner.py:77-83's arguments: N(tanh(mean(s)), diag(exp(clip(log_stds))²)), the
    standard deviations state-independent parameters (initially 1), no tanh squashing of samples.
    `net` is the MLP with its last hidden layer activated (`activate_final=True`) followed by the mean head."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], log_std_min: float,
                 log_std_max: float):
        super().__init__()
        self.net = relu_mlp(obs_dim, hidden, action_dim)
        self.log_stds = nn.Parameter(torch.zeros(action_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """The mean action (B, A), also the deterministic evaluation action."""
        return torch.tanh(self.net(observations))

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Diagonal-Gaussian log-density summed over action dims, (B, A) → (B,)."""
        log_std = self.log_stds.clamp(self.log_std_min, self.log_std_max)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class RewardTransitionSampler:
    """Uniform (s, a, r, mask, s') transitions of a dataset with stored rewards (dataset_utils.py:62-68
    `Dataset.sample`): sources are the rows with a successor in their episode, as D4RL's `qlearning_dataset`
    drops each timeout's last row. Resumable like the shared samplers (`state_dict`)."""

    def __init__(self, dataset: EpisodeDataset, reward_shift: float, action_clip_eps: float, seed: int):
        if dataset.rewards is None:
            raise ConfigError(f"iql needs stored rewards and {dataset.name} has none",
                              "train iql on a D4RL dataset (maze2d-*, antmaze-*)")
        if len(dataset.transition_rows) == 0:
            raise ConfigError(f"{dataset.name} has no transitions (every episode has a single row)")
        rows = dataset.transition_rows
        terminals = dataset.meta.get("terminals", np.zeros(len(dataset), bool))
        limit = 1.0 - action_clip_eps
        self.arrays = {
            "observations": dataset.observations[rows],
            "actions": np.clip(dataset.actions[rows], -limit, limit),
            "rewards": (dataset.rewards[rows] + np.float32(reward_shift)).astype(np.float32),
            "masks": 1.0 - terminals[rows].astype(np.float32),
            "next_observations": dataset.observations[rows + 1],
        }
        self.rng = np.random.default_rng(seed)
        self.batches_drawn = 0

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        index = self.rng.integers(0, len(self.arrays["rewards"]), size=batch_size)
        self.batches_drawn += 1
        return {key: torch.from_numpy(value[index]) for key, value in self.arrays.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = state["batches_drawn"]


class IQLAgent(Agent):
    sampler_kind = "transition"
    loss_functions = ("value_losses", "actor_losses", "critic_losses")
    float32_calls = ("value.forward", "critic.forward", "target_critic.forward")

    def __init__(self, cfg: IQLConfig, info: DataInfo):
        super().__init__(cfg, info)
        obs, act, hidden = info.obs_dim, info.action_dim, tuple(cfg.hidden_dims)
        self.actor = IQLActor(obs, act, hidden, cfg.log_std_min, cfg.log_std_max)
        self.critic = DoubleCritic(obs, act, hidden)
        self.value = ValueNet(obs, hidden)
        # learner.py:106-107: the target is built from the critic's init key, i.e. a copy of the initial critic.
        self.target_critic = frozen_copy(self.critic)
        # optax.adam defaults = torch's Adam defaults (β 0.9/0.999, ε 1e-8); learner.py:85-104.
        self.optimizers = {"actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
                           "value": torch.optim.Adam(self.value.parameters(), lr=cfg.value_lr),
                           "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)}
        if cfg.actor_lr_decay_steps:  # optax.cosine_decay_schedule(-lr, max_steps): 1 at the first update
            self.schedulers = {"actor": warmup_cosine_schedule(self.optimizers["actor"], 0, cfg.actor_lr_decay_steps)}

    def make_sampler(self, dataset: EpisodeDataset, seed: int) -> RewardTransitionSampler:
        return RewardTransitionSampler(dataset, self.cfg.reward_shift, self.cfg.action_clip_eps, seed)

    # --- the three losses, each from the networks as they are when it is taken ------------------------
    def value_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            q = self.target_critic(batch["observations"], batch["actions"]).min(0).values   # (B,)
        v = self.value(batch["observations"])                                               # (B,)
        diff = q - v
        # critic.py:8-10: weight τ where the residual is > 0, else 1 − τ (a zero residual gets 1 − τ)
        weight = torch.where(diff > 0, diff.new_tensor(self.cfg.expectile), diff.new_tensor(1.0 - self.cfg.expectile))
        return {"value_loss": (weight * diff.pow(2)).mean(), "v_mean": v.mean()}

    def actor_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            v = self.value(batch["observations"])
            q = self.target_critic(batch["observations"], batch["actions"]).min(0).values
            adv = q - v
            weight = torch.exp(adv * cfg.temperature).clamp(max=cfg.max_adv_weight)
        mean = self.actor(batch["observations"])
        log_prob = self.actor.log_prob(mean, batch["actions"])
        return {"actor_loss": -(weight * log_prob).mean(), "adv_mean": adv.mean(), "adv_weight": weight.mean(),
                "adv_capped": (weight >= cfg.max_adv_weight).to(adv.dtype).mean()}

    def critic_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            next_v = self.value(batch["next_observations"])
            target_q = batch["rewards"] + self.cfg.discount * batch["masks"] * next_v
        q = self.critic(batch["observations"], batch["actions"])                            # (2, B)
        return {"critic_loss": (q - target_q).pow(2).sum(0).mean(), "q1_mean": q[0].mean(), "q2_mean": q[1].mean()}

    def _step(self, key: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[key]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if key in self.schedulers:
            self.schedulers[key].step()

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        metrics = self.value_losses(batch)
        self._step("value", metrics["value_loss"])
        actor = self.actor_losses(batch)     # reads the value network just updated (learner.py:34-35)
        self._step("actor", actor["actor_loss"])
        critic = self.critic_losses(batch)   # so does the TD target (learner.py:37)
        self._step("critic", critic["critic_loss"])
        polyak_update(self.target_critic, self.critic, self.cfg.tau)  # from the updated critic (learner.py:39)
        return metrics_to_floats({**metrics, **actor, **critic})

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return metrics_to_floats({**self.value_losses(batch), **self.actor_losses(batch),
                                  **self.critic_losses(batch)})

    def act(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Deterministic action: the mean (not goal-conditioned: each D4RL task has one fixed goal)."""
        return self.actor(observations)

    def policy(self) -> MarkovPolicy:
        return MarkovPolicy(self)
