"""Shared pieces of the return-conditioned sequence baselines (DT, QT, LSDT).

All three embed every timestep as the tokens (R_t, [s_t; g], a_t) plus a learned timestep embedding, the goal
concatenated to the state as LSDT's `--goalconcate` (WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER
scripts/train.py) and as QHyer's [s_t; g] token; they differ in the blocks that mix the tokens (`RTGTransformer`
takes them as an argument) and in how they train and pick the conditioning return. Windows come from the shared
`WindowSampler`: left-padded, ending at the sampled row.

Two protocols (`SequenceConfig.protocol`):
- 'relabelled' (default, every dataset): hindsight-relabelled goals with sparse 0/1 goal rewards and returns-to-go,
  conditioning return 1 on every step, also after the goal is reached (`SequenceAgent.spent_reward`), the same
  data as QHyer;
- 'source' (D4RL datasets only): each method's own protocol, under which the card's D4RL baseline numbers were
  measured: D4RL's stored rewards, returns-to-go = undiscounted reward sums to the episode end divided by
  `reward_scale`, the conditioning return `target_return` (QT: its `candidate_returns`) in reward units, decremented
  by the env's rewards, and as goal input D4RL's recorded `infos/goal` (LSDT `--goalconcate`) or none (DT, QT).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from qhyer.agent import Agent, DataInfo, MethodConfig, dataset_family, metrics_to_floats, window_from_history
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec
from qhyer.data.samplers import GoalSampling, WindowSampler
from qhyer.errors import ConfigError
from qhyer.models.layers import TransformerBlock, attention_mask, interleave, masked_mean, token_mask
from qhyer.rollout.policy import StepInput

PROTOCOLS = ("relabelled", "source")
GOAL_INPUTS = {"relabelled": ("relabelled",), "source": ("d4rl", "none")}


@dataclass
class SequenceConfig(MethodConfig):
    """Fields of every sequence baseline; defaults are DT's (kzl/decision-transformer gym/experiment.py, the same in
    CORL algorithms/offline/dt.py `TrainConfig`). QT and LSDT override what differs.

    `None` fields are filled by `for_family`: the protocol's values (RELABELLED_DEFAULTS, or SOURCE_DEFAULTS of the
    dataset family), then the class's FAMILY_DEFAULTS."""

    batch_size: int = 64          # DT/CORL: batch_size 64
    context_len: int = 20         # DT/CORL: K = seq_len = 20
    embed_dim: int = 128          # DT/CORL: embed_dim 128
    n_layers: int = 3             # DT/CORL: n_layer 3
    n_heads: int = 1              # DT/CORL: n_head 1
    dropout: float = 0.1          # DT/CORL: dropout 0.1 (embedding, attention and residual)
    lr: float = 1e-4              # DT/CORL: AdamW lr 1e-4
    weight_decay: float = 1e-4    # DT/CORL: weight_decay 1e-4
    warmup_steps: int = 10_000    # DT/CORL: linear warmup over 10k updates
    grad_clip: float = 0.25       # DT/CORL: clip_grad_norm 0.25
    # --- goal relabelling (protocol 'relabelled'; qhyer.data.samplers.GoalSampling), the same for DT, QT, LSDT and
    # QHyer's 'rtg' conditioning so they train on the same data. All assumptions: no public source fixes this for
    # goal-conditioned DTs (LSDT conditions on D4RL's recorded goal). Future states (half geometric, i.e. mostly
    # within ~100 steps, 30 % uniform over the rest of the episode for long horizons) give windows whose
    # return-to-go is 1, random dataset states (20 %) windows whose return-to-go is (almost always) 0: without those
    # failures every training RTG would be 1 and RTG conditioning would carry no information. Current-state goals
    # are left out: they make the reward degenerate.
    p_current: float = 0.0
    p_future_geometric: float = 0.5
    p_future_uniform: float = 0.3
    p_random: float = 0.2
    discount: float = 0.99        # geometric goal offsets ~ Geom(1 − discount) (OGBench's `discount`; QT's TD too)
    # --- protocol ----------------------------------------------------------------------------------------------
    protocol: str = "relabelled"  # 'relabelled' or 'source' (D4RL only; module docstring)
    reward_scale: float | None = None  # RTG tokens = returns / reward_scale; None = the protocol's value
    goal_input: str | None = None      # 'relabelled' goal, D4RL's 'd4rl' infos/goal, or 'none'; None = protocol's

    RELABELLED_DEFAULTS: ClassVar[dict[str, Any]] = {"reward_scale": 1.0, "goal_input": "relabelled"}
    SOURCE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}  # family → values; the families 'source' runs on
    SOURCE_DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}  # dataset → values its source script sets

    def for_dataset(self, spec: DatasetSpec) -> SequenceConfig:
        """Under 'source', the values the method's own scripts set for this dataset (SOURCE_DATASET_DEFAULTS) fill
        `None` fields first, then `for_family`."""
        values = self.SOURCE_DATASET_DEFAULTS.get(spec.name, {}) if self.protocol == "source" else {}
        fixed = {key: value for key, value in values.items() if getattr(self, key) is None}
        return dataclasses.replace(self, **fixed).for_family(dataset_family(spec))

    def training_data(self, dataset: EpisodeDataset) -> EpisodeDataset:
        """Under 'source', trajectories end where the methods' D4RL loaders end them (AntMaze: at the goal)."""
        if self.protocol != "source":
            return dataset
        from qhyer.data.d4rl import source_episodes  # lazily: h5py is only needed for D4RL

        return source_episodes(dataset)

    def for_family(self, family: str) -> SequenceConfig:
        """Protocol values first (a ConfigError for 'source' outside D4RL), then FAMILY_DEFAULTS. The source goal
        is D4RL's 2-D target, the maze xy, so 'source' takes goal_rep 'task' (its statistics standardise it)."""
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{self.name}.protocol must be one of {', '.join(PROTOCOLS)} (got '{self.protocol}')")
        if self.protocol == "source" and family not in self.SOURCE_DEFAULTS:
            raise ConfigError(f"{self.name}.protocol=source needs a D4RL dataset ({', '.join(self.SOURCE_DEFAULTS)}),"
                              f" not the '{family}' family", "use protocol=relabelled on OGBench datasets")
        values = self.SOURCE_DEFAULTS[family] if self.protocol == "source" else self.RELABELLED_DEFAULTS
        fixed = {key: value for key, value in values.items() if getattr(self, key) is None}
        if self.protocol == "source":
            fixed["goal_rep"] = "task"
        cfg = super(SequenceConfig, dataclasses.replace(self, **fixed)).for_family(family)
        if cfg.goal_input not in GOAL_INPUTS[cfg.protocol]:
            raise ConfigError(f"{self.name}.goal_input must be one of {', '.join(GOAL_INPUTS[cfg.protocol])} under "
                              f"protocol={cfg.protocol} (got '{cfg.goal_input}')")
        if cfg.reward_scale <= 0:
            raise ConfigError(f"{self.name}.reward_scale must be positive (got {cfg.reward_scale})")
        cfg.goal_sampling()  # probabilities and discount
        return cfg

    def goal_sampling(self) -> GoalSampling:
        return GoalSampling(self.p_current, self.p_future_geometric, self.p_future_uniform, self.p_random,
                            self.discount)


@dataclass
class CosineDecayConfig(SequenceConfig):
    """A sequence model whose learning rate decays by cosine to 0 over its whole run (QT, LSDT): the decay length
    follows the run's budget, so a short run still anneals instead of stopping at a fraction of its schedule. QT's
    source protocol sets its own length instead (run.sh's max_iters iterations, which outlast its early stop)."""

    lr_decay_steps: int = 0       # updates of the cosine decay; 0 = the run's train.steps
    lr_decay_every: int = 1       # updates per step of the schedule (QT's source protocol: once per 1000 updates)

    def for_budget(self, steps: int) -> CosineDecayConfig:
        return dataclasses.replace(self, lr_decay_steps=self.lr_decay_steps or steps)


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                           step_every: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay to 0 at `total_steps` and 0 after it (LSDT scripts/train.py
    `create_combined_lambda`; with no warmup this is QT's `CosineAnnealingLR(eta_min=0)`). With `step_every` E the
    cosine moves only every E updates, as QT steps its schedulers once per iteration of E updates
    (decision_transformer/training/ql_trainer.py l.112-117): update u uses the factor of update E·⌊u/E⌋."""
    if total_steps < 1:
        raise ValueError("the cosine schedule has no length: build the config with .for_budget(train steps)")
    if step_every < 1:
        raise ConfigError(f"lr_decay_every must be at least 1 (got {step_every})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        step -= step % step_every
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def gpt_init(module: nn.Module) -> None:
    """GPT-2 initialisation as CORL dt.py `_init_weights`: N(0, 0.02) Linear/Embedding weights, zero biases."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


class RTGTransformer(nn.Module):
    """(R_t, [s_t; g], a_t) token model: embeddings + timestep embedding → LayerNorm → dropout → blocks → norm.

    `blocks` are any modules called as block(x, mask) with the boolean (B|1, 1, L, L) mask of `attention_mask`.
    forward returns the hidden states (B, K, 3, D): [:, :, 0] the return token, [:, :, 1] the state token (which
    predicts a_t, as in DT) and [:, :, 2] the action token.
    """

    def __init__(self, state_dim: int, action_dim: int, embed_dim: int, max_timestep: int, blocks: list[nn.Module],
                 embed_dropout: float, final_norm: bool):
        super().__init__()
        self.embed_return = nn.Linear(1, embed_dim)
        self.embed_state = nn.Linear(state_dim, embed_dim)
        self.embed_action = nn.Linear(action_dim, embed_dim)
        self.embed_timestep = nn.Embedding(max_timestep, embed_dim)
        self.embed_ln = nn.LayerNorm(embed_dim)
        self.embed_drop = nn.Dropout(embed_dropout)
        self.blocks = nn.ModuleList(blocks)
        self.final_ln = nn.LayerNorm(embed_dim) if final_norm else nn.Identity()
        self.action_head = nn.Sequential(nn.Linear(embed_dim, action_dim), nn.Tanh())  # DT: Linear + Tanh

    def forward(self, rtg: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        # rtg (B, K), states (B, K, S), actions (B, K, A), timesteps (B, K), mask (B, K) bool
        b, k = rtg.shape
        # Evaluation may outlast every training episode: clamp as QT's `max_ep_len - 1` cutoff.
        time = self.embed_timestep(timesteps.clamp(0, self.embed_timestep.num_embeddings - 1))
        x = interleave(self.embed_return(rtg[..., None]) + time, self.embed_state(states) + time,
                       self.embed_action(actions) + time)
        x = self.embed_drop(self.embed_ln(x))
        mask_3k = attention_mask(token_mask(mask, 3), x.shape[1], x.device)
        for block in self.blocks:
            x = block(x, mask_3k)
        return self.final_ln(x).view(b, k, 3, -1)


def gpt_model(cfg: SequenceConfig, state_dim: int, info: DataInfo) -> RTGTransformer:
    """DT's model (also QT's actor): embedding dropout, pre-LN GPT blocks, output LayerNorm, GPT-2 init."""
    blocks = [TransformerBlock(cfg.embed_dim, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers)]
    model = RTGTransformer(state_dim, info.action_dim, cfg.embed_dim, info.max_episode_length, blocks,
                           embed_dropout=cfg.dropout, final_norm=True)
    model.apply(gpt_init)
    return model


class SequenceAgent(Agent):
    """Return-conditioned behaviour cloning (DT, LSDT): action MSE on the real steps of each window, one
    clipped AdamW step per update. Subclasses build `self.model`, call `init_optimizer` and give their config a
    `target_return` (reward units); QT overrides `update` and `act`."""

    sampler_kind = "window"
    model: RTGTransformer

    def __init__(self, cfg: SequenceConfig, info: DataInfo):
        super().__init__(cfg, info)
        self.uses_goal = cfg.goal_input != "none"
        self.state_dim = info.obs_dim + (info.goal_dim if self.uses_goal else 0)  # [s; g] (or s) token input

    def make_sampler(self, dataset: EpisodeDataset, seed: int) -> WindowSampler:
        goals = None if self.cfg.protocol == "source" else self.cfg.goal_sampling()  # None: the dataset's own
        return WindowSampler(dataset, self.cfg.context_len, goals=goals, goal_rep=self.cfg.goal_rep, seed=seed,
                             reward_scale=self.cfg.reward_scale)

    def init_optimizer(self, schedule: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]) -> None:
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.optimizers, self.schedulers = {"model": opt}, {"model": schedule(opt)}

    # --- model calls ---------------------------------------------------------------------------------
    def states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Standardised [s_t; g] for every step, (B, K, O + G); s_t alone when the goal input is 'none'. Goals are
        one per window (B, G) or, as D4RL records them, one per step (B, K, G)."""
        obs = self.normalize_obs(batch["observations"].float())
        if not self.uses_goal:
            return obs
        goal = self.normalize_goal(batch["goals"].float())
        if goal.dim() == 2:
            goal = goal[:, None].expand(-1, obs.shape[1], -1)
        return torch.cat([obs, goal], dim=-1)

    def conditioning(self, target: torch.Tensor, spent: torch.Tensor) -> torch.Tensor:
        """Return-to-go tokens for a target return (reward units) after `spent` reward (`spent_reward`):
        (target − spent) / scale, as DT's and LSDT's evaluation decrement it (unfloored, as theirs)."""
        return (target - spent) / self.cfg.reward_scale

    def spent_reward(self, history_rewards: np.ndarray) -> np.ndarray:
        """(B, t) rewards received → (B, K) reward taken off the target before each step of the window.

        The conditioning means what a training return-to-go meant under the run's protocol:
        - 'source': the reward still to come to the episode end (D4RL rewards, `WindowSampler._recorded`), so the
          rewards received so far are subtracted (`reward_so_far`), as DT/QT/LSDT's evaluation loops do.
        - 'relabelled': whether the goal is still ahead. A training RTG is 1 on every step before the relabelled goal
          is reached, and the training episode ends there (`WindowSampler._relabelled`: dones = r); an RTG of 0 only
          marks goals that lie behind the step or in another episode (random goals). So nothing is subtracted: the
          policy is asked for the target on every step, also after it reached the goal. OGBench ends evaluation at
          the goal anyway; Maze2d pays 1 on every step inside the goal radius and D4RL's score counts those steps,
          so subtracting them would tell the policy, from the first step at the goal on, that the goal no longer
          matters — the opposite of what the score rewards."""
        if self.cfg.protocol == "source":
            return reward_so_far(history_rewards, self.cfg.context_len)
        return np.zeros((len(history_rewards), self.cfg.context_len), np.float32)

    def hidden(self, model: RTGTransformer, batch: dict[str, torch.Tensor], rtg: torch.Tensor) -> torch.Tensor:
        """Token hidden states (B, K, 3, D) of `model` (the online actor or an EMA copy) on a window."""
        return model(rtg.float(), self.states(batch), batch["actions"].float(), batch["timesteps"], batch["mask"])

    def predict_actions(self, model: RTGTransformer, batch: dict[str, torch.Tensor], rtg: torch.Tensor) -> torch.Tensor:
        """a_t predicted at every state token, (B, K, A)."""
        return model.action_head(self.hidden(model, batch, rtg)[:, :, 1])

    # --- training ------------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.predict_actions(self.model, batch, batch["returns_to_go"])
        return {"loss": masked_mean((pred - batch["actions"]).pow(2).mean(-1), batch["mask"])}

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        metrics = self.losses(batch)
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        opt.step()
        self.schedulers["model"].step()
        return metrics_to_floats(metrics)

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return metrics_to_floats(self.losses(batch))

    # --- acting --------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, window: dict[str, torch.Tensor], spent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions (B, A) for the last step of each window. DT evaluation: condition on the target return minus
        `spent` (B, K), the reward `spent_reward` counts (see `conditioning`)."""
        rtg = self.conditioning(torch.tensor(self.cfg.target_return, device=spent.device), spent)
        return self.predict_actions(self.model, window, rtg)[:, -1]

    def policy(self) -> RTGPolicy:
        return RTGPolicy(self)


class RTGPolicy:
    """`qhyer.rollout.Policy` for the sequence baselines: rebuilds each episode's window from its history."""

    def __init__(self, agent: SequenceAgent):
        self.agent = agent
        self.goal_rep = agent.cfg.goal_rep
        self.generator = torch.Generator(agent.device)

    def reset(self, batch_size: int) -> None:
        # QT samples among candidate returns; a fixed seed per batch of episodes keeps evaluation reproducible.
        self.generator.manual_seed(0)

    @torch.no_grad()
    def act(self, step: StepInput) -> np.ndarray:
        device = self.agent.device
        window = window_from_history(step, self.agent.cfg.context_len, device)
        spent = torch.as_tensor(self.agent.spent_reward(step.history_rewards), device=device)
        return self.agent.act(window, spent, self.generator).clamp(-1.0, 1.0).float().cpu().numpy()


def reward_so_far(history_rewards: np.ndarray, context_len: int) -> np.ndarray:
    """(B, t) rewards received → (B, K) reward received before each step of the left-padded window
    (`window_from_history` layout), so R_i = target − reward_so_far_i as DT decrements its return each step."""
    b, t = history_rewards.shape
    cumulative = np.concatenate([np.zeros((b, 1)), np.cumsum(history_rewards, axis=1)], axis=1)[:, -context_len:]
    return np.pad(cumulative, ((0, 0), (context_len - cumulative.shape[1], 0))).astype(np.float32)
