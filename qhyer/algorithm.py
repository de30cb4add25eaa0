"""QHyer: Q-conditioned hybrid attention–Mamba decision transformer for offline goal-conditioned RL
(Lei, Wang, Zhang, Wang; ICML 2026, arXiv 2605.01862). No code is public; one readable file in the style of CORL
(`corl-team/CORL` algorithms/offline/dt.py). Every value the paper does not state is a config field marked
"assumption" with its source; docs/qhyer.md, section "Assumptions", lists them and how to override each.

Sequence: per timestep the tokens (Q_t, [s_t; g], a_t), 3K tokens for a window of K steps, each plus a learned
timestep embedding, through the backbone (qhyer/models/hybrid.py); a_t is predicted from the [s_t; g] token.

Training, one joint loss  λ_critic·L_critic + λ_BC·L_BC + λ_Q·L_Q  (qhyer/models/critics.py for the critics):
  L_critic  the critic's loss on the hindsight pairs (s, a, g) at each window's last step (the row the goal was
            relabelled from); for 'nf' the flow's negative log-likelihood per goal dimension.
  L_BC      −log π(a_t | Q_≤t, [s;g]_≤t, a_<t) on every real step, π a tanh-mean Gaussian with state-dependent std.
            The Q tokens are the critic's clipped Q(s_t, a_t, g) of the dataset actions, computed without gradient
            (BC must not shape the critic, or the critic could learn to encode a_t into the token).
  L_Q       expectile regression L²_τ(Q_t − Q̂_φ(s_t, g)) on every real step, target detached (stop-grad).
Inference, two stages per step: Q̂_φ(s_t, g) becomes the Q token of step t, then a_t is read from [s_t; g].
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qhyer.agent import Agent, DataInfo, MethodConfig, metrics_to_floats, warmup_schedule, window_from_history
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.samplers import GoalSampling, WindowSampler
from qhyer.errors import ConfigError
from qhyer.models.critics import (
    CRITICS,
    ContrastiveCritic,
    Critic,
    CVAECritic,
    ExpectileHead,
    FlowCritic,
    expectile_loss,
)
from qhyer.models.hybrid import BACKBONES, HybridStack
from qhyer.models.layers import GaussianActionHead, interleave, masked_mean, token_mask
from qhyer.rollout.policy import StepInput

CONDITIONINGS = (*CRITICS, "none", "rtg")
Q, STATE_GOAL, ACTION = range(3)  # token kinds, in their order within a timestep

# Hindsight goal mix per conditioning (QHyerConfig.CONDITIONING_DEFAULTS), both assumptions. The Q-conditioned
# variants (and 'none') train on futures only, as the critic models reaching goals: half geometric (discounted
# occupancy, C-learning), half uniform over the rest of the episode (long horizons). 'rtg' takes DT's mix in this
# harness (baselines/sequence.py SequenceConfig's p_* fields; a test keeps them equal): its 20 % random dataset
# states are almost never reached later in the window's episode and give return-to-go 0, so the token is not a
# constant 1 (tests/test_qhyer.py derives the expected share of zeros).
FUTURE_GOAL_MIX = {"p_current": 0.0, "p_future_geometric": 0.5, "p_future_uniform": 0.5, "p_random": 0.0}
DT_GOAL_MIX = {"p_current": 0.0, "p_future_geometric": 0.5, "p_future_uniform": 0.3, "p_random": 0.2}


@dataclass
class QHyerConfig(MethodConfig):
    name: str = "qhyer"
    batch_size: int = 64                       # assumption: LSDT/DT batch 64 (LSDT scripts/train.py)
    # --- ablation switches ------------------------------------------------------------------------------------
    backbone: str = "hybrid"                   # 'hybrid' (paper) | 'attention' | 'mamba'
    conditioning: str = "nf"                   # 'nf' (paper) | 'crl' | 'cvae' | 'none' (zero Q token) | 'rtg'
    expectile_tau: float | None = None         # paper: 0.9 play, 0.95 noisy; None = FAMILY_DEFAULTS
    # --- sequence model --------------------------------------------------------------------------------------
    context_len: int = 20                      # assumption: K = 20 (LSDT/DT default)
    n_layers: int = 3                          # assumption: 3 blocks (LSDT/DT)
    embed_dim: int = 128                       # assumption: width 128 (LSDT/DT)
    n_heads: int = 2                           # assumption: 2 heads (LSDT attention branch)
    dropout: float = 0.25                      # assumption: LSDT dropout 0.25 (embeddings, attention, residuals)
    d_state: int = 16                          # assumption: Mamba-1 default N (mamba_simple.py)
    d_conv: int = 4                            # Mamba-1 default, given in the issue
    expand: int = 2                            # assumption: Mamba-1 default d_inner = 2·width
    # --- critic and Q token ----------------------------------------------------------------------------------
    critic_hidden: int = 256                   # assumption: hidden width of every critic network
    flow_layers: int = 4                       # assumption: 4 affine couplings ('nf')
    cvae_latent_dim: int = 16                  # assumption ('cvae')
    crl_repr_dim: int = 64                     # assumption: φ/ψ size ('crl')
    goal_noise: float = 0.05                   # assumption: dequantisation std on standardised goals (critic training)
    q_clip: float = 10.0                       # assumption: Q token = clip(raw Q, ±q_clip); raw Q is per goal dim
    # assumption: Q̂_φ(s_t, g) is an MLP on [s_t; g] (the card's notation). The transformer could emit Q̂_t from the
    # a_{t−1} token that precedes Q_t, but that state has not seen s_t (docs/qhyer.md, Losses and optimisation).
    q_head_hidden: tuple[int, ...] = (256, 256)
    rtg_target: float = 1.0                    # 'rtg': return asked for on every step (sparse 0/1 goal reward)
    # --- loss weights ------------------------------------------------------------------------------------------
    lambda_critic: float = 1.0                 # assumption
    lambda_bc: float = 1.0                     # assumption
    lambda_q: float = 1.0                      # assumption
    # --- hindsight goals (qhyer.data.samplers), relative to each window's last step -------------------------
    # None = CONDITIONING_DEFAULTS[conditioning]; an explicit value wins (the four must still sum to 1)
    p_current: float | None = None
    p_future_geometric: float | None = None
    p_future_uniform: float | None = None
    p_random: float | None = None
    discount: float = 0.99                     # assumption: geometric offsets ~ Geom(1 − 0.99) (OGBench discount)
    # --- optimisation (assumption: LSDT scripts/train.py unless noted) ---------------------------------------
    lr: float = 1e-4                           # AdamW, sequence model and Q̂ head
    weight_decay: float = 1e-4                 # on weight matrices only (not biases, norms, D, A_log)
    warmup_steps: int = 10_000                 # linear warmup, then constant (DT; LSDT decays by cosine)
    grad_clip: float = 0.25                    # grad-norm clip, sequence model and Q̂ head
    critic_lr: float = 3e-4                    # assumption: AdamW for the critic (OGBench lr), same warmup
    critic_grad_clip: float = 1.0              # assumption: separate clip so the critic's gradient scale
                                               # does not eat the 0.25 budget of the sequence model

    FAMILY_DEFAULTS: ClassVar = {
        "ogbench_play": {"expectile_tau": 0.9},    # paper
        "ogbench_noisy": {"expectile_tau": 0.95},  # paper
        "maze2d": {"expectile_tau": 0.95},         # assumption: high-coverage planner data, as noisy
        "antmaze": {"expectile_tau": 0.9},         # assumption: play/diverse data, as play
    }

    CONDITIONING_DEFAULTS: ClassVar = {**dict.fromkeys((*CRITICS, "none"), FUTURE_GOAL_MIX), "rtg": DT_GOAL_MIX}

    def for_family(self, family: str) -> QHyerConfig:
        """A copy with the goal mix filled from CONDITIONING_DEFAULTS and τ from FAMILY_DEFAULTS, validated."""
        self._check_conditioning()
        unset = {key: value for key, value in self.CONDITIONING_DEFAULTS[self.conditioning].items()
                 if getattr(self, key) is None}
        cfg = super(QHyerConfig, dataclasses.replace(self, **unset)).for_family(family)
        cfg.validate()
        return cfg

    def _check_conditioning(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ConfigError(f"unknown conditioning '{self.conditioning}'", f"use one of: {', '.join(CONDITIONINGS)}")

    def validate(self) -> None:
        """ConfigError for any invalid switch or value (None fields may remain: for_family fills them)."""
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone '{self.backbone}'", f"use one of: {', '.join(BACKBONES)}")
        self._check_conditioning()
        # τ = 0.5 is plain mean regression, the τ sweep's first point
        if self.expectile_tau is not None and not 0.5 <= self.expectile_tau < 1.0:
            raise ConfigError(f"expectile_tau must lie in [0.5, 1) (got {self.expectile_tau})",
                              "the paper uses 0.9 (play) and 0.95 (noisy)")
        if self.context_len < 1 or self.n_layers < 1:
            raise ConfigError("context_len and n_layers must be at least 1")
        if self.embed_dim % self.n_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by n_heads {self.n_heads}")
        if self.q_clip <= 0 or self.goal_noise < 0:
            raise ConfigError("q_clip must be positive and goal_noise non-negative")
        if all(p is not None for p in self.goal_mix):
            self.goal_sampling()  # probabilities and discount

    @property
    def goal_mix(self) -> tuple[float | None, ...]:
        return (self.p_current, self.p_future_geometric, self.p_future_uniform, self.p_random)

    def goal_sampling(self) -> GoalSampling:
        return GoalSampling(*self.goal_mix, self.discount)


class DecisionModel(nn.Module):
    """Token embeddings, the backbone and the action head. Embeddings: Linear per token kind plus a timestep
    table, then LayerNorm (DT's embed_ln) and dropout. Inputs standardised; the Q token is a scalar."""

    def __init__(self, cfg: QHyerConfig, info: DataInfo):
        super().__init__()
        dim = cfg.embed_dim
        self.token_embed = nn.ModuleList([nn.Linear(1, dim), nn.Linear(info.obs_dim + info.goal_dim, dim),
                                          nn.Linear(info.action_dim, dim)])       # Q, [s; g], a
        self.timestep_embed = nn.Embedding(info.max_episode_length, dim)
        self.embed_ln, self.embed_drop = nn.LayerNorm(dim), nn.Dropout(cfg.dropout)
        self.backbone = HybridStack(cfg.n_layers, dim, cfg.n_heads, cfg.dropout, cfg.backbone,
                                    dict(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand))
        self.action_head = GaussianActionHead(dim, info.action_dim)  # tanh mean, state-dependent log-std

    def embed(self, kind: int, value: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """value (b, T, ·) of one token kind, timesteps (b, T) → (b, T, D); evaluation steps beyond the longest
        training episode reuse its last timestep's embedding."""
        time = self.timestep_embed(timesteps.clamp(0, self.timestep_embed.num_embeddings - 1))
        return self.embed_drop(self.embed_ln(self.token_embed[kind](value) + time))

    def forward(self, q: torch.Tensor, state_goal: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """q (b, K), state_goal (b, K, O+G), actions (b, K, A), timesteps (b, K), mask (b, K) → hidden state of
        each [s_t; g] token (b, K, D) and the backbone's per-layer stats (over the 3K tokens)."""
        tokens = interleave(*(self.embed(kind, value, timesteps)
                              for kind, value in enumerate((q[..., None], state_goal, actions))))
        hidden, stats = self.backbone(tokens, token_mask(mask, 3))
        return hidden[:, STATE_GOAL::3], stats

    def step(self, cache: list[dict], kind: int, value: torch.Tensor, timestep: int) -> torch.Tensor:
        """Feed one token, value (b, ·) at `timestep`, in step mode → its hidden state (b, D)."""
        timesteps = torch.full((value.shape[0], 1), timestep, dtype=torch.long, device=value.device)
        return self.backbone.step(self.embed(kind, value[:, None], timesteps), cache)[:, 0]


class QHyerAgent(Agent):
    sampler_kind = "window"
    float32_calls = ("critic.loss", "critic.q", "q_head.forward")  # qhyer.agent.Agent.wrap_loss_functions

    def __init__(self, cfg: QHyerConfig, info: DataInfo):
        super().__init__(cfg, info)
        cfg.validate()
        unset = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None]
        if unset:
            raise ConfigError(f"{', '.join(unset)} unset", "call QHyerConfig.for_family(family) or set them explicitly")
        self.model = DecisionModel(cfg, info)
        self.critic = self._make_critic(cfg, info)
        self.q_head = (ExpectileHead(info.obs_dim, info.goal_dim, cfg.q_head_hidden)
                       if self.critic is not None else None)
        self.policy_params = [*self.model.parameters(), *(self.q_head.parameters() if self.q_head else ())]
        self.optimizers["policy"] = torch.optim.AdamW(_decay_groups(self.model, self.q_head, cfg.weight_decay),
                                                      lr=cfg.lr)
        if self.critic is not None:
            self.optimizers["critic"] = torch.optim.AdamW(_decay_groups(self.critic, None, cfg.weight_decay),
                                                          lr=cfg.critic_lr)
        self.schedulers = {key: warmup_schedule(opt, cfg.warmup_steps) for key, opt in self.optimizers.items()}

    @staticmethod
    def _make_critic(cfg: QHyerConfig, info: DataInfo) -> Critic | None:
        context, goal, hidden = info.obs_dim + info.action_dim, info.goal_dim, cfg.critic_hidden
        if cfg.conditioning == "nf":
            return FlowCritic(context, goal, hidden, cfg.flow_layers, cfg.goal_noise)
        if cfg.conditioning == "cvae":
            return CVAECritic(context, goal, hidden, cfg.cvae_latent_dim, cfg.goal_noise)
        if cfg.conditioning == "crl":
            return ContrastiveCritic(context, goal, hidden, cfg.crl_repr_dim)
        return None

    # --- contract ----------------------------------------------------------------------------------------------
    def make_sampler(self, dataset: EpisodeDataset, seed: int) -> WindowSampler:
        return WindowSampler(dataset, self.cfg.context_len, self.cfg.goal_sampling(), self.cfg.goal_rep, seed)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """Loss terms and metrics (scalars) and the backbone's per-layer stats."""
        cfg, mask = self.cfg, batch["mask"]
        s, a, g = self.normalize_obs(batch["observations"]), batch["actions"], self.normalize_goal(batch["goals"])
        g_steps = g[:, None].expand(-1, s.shape[1], -1)                           # (b, K, G)
        out: dict[str, torch.Tensor] = {}
        if self.critic is not None:
            out["loss_critic"] = self.critic.loss(s[:, -1], a[:, -1], g)         # last step: always real
            with torch.no_grad():
                q = self.critic.q(s.flatten(0, 1), a.flatten(0, 1), g_steps.flatten(0, 1)).view(mask.shape)
                q = q.clamp(-cfg.q_clip, cfg.q_clip)
            out["loss_q"] = masked_mean(expectile_loss(q - self.q_head(s, g_steps), cfg.expectile_tau), mask)
        elif cfg.conditioning == "rtg":
            q = batch["returns_to_go"]
        else:  # 'none': a constant zero Q token keeps the sequence layout of the other variants
            q = torch.zeros_like(mask, dtype=s.dtype)
        q = q * mask                                                             # padding reads zeros everywhere
        hidden, stats = self.model(q, torch.cat([s, g_steps], -1), a, batch["timesteps"], mask)
        mean, log_std = self.model.action_head(hidden)
        out["loss_bc"] = -masked_mean(GaussianActionHead.log_prob(mean, log_std, a), mask)
        out["loss"] = cfg.lambda_bc * out["loss_bc"]
        if self.critic is not None:
            out["loss"] = out["loss"] + cfg.lambda_critic * out["loss_critic"] + cfg.lambda_q * out["loss_q"]
        out["action_mse"] = masked_mean((mean - a).pow(2).mean(-1), mask)
        out["q_token_mean"] = masked_mean(q, mask)
        return out, stats

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        metrics, _ = self.losses(batch)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        nn.utils.clip_grad_norm_(self.policy_params, self.cfg.grad_clip)
        if self.critic is not None:
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.critic_grad_clip)
        for key, opt in self.optimizers.items():
            opt.step()
            self.schedulers[key].step()
        return metrics_to_floats(metrics)

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Validation losses plus the backbone's statistics over real tokens, per layer ('…/layer{i}') and averaged
        over layers: `delta_mean`, Ā_t under each definition of ABAR_DEFINITIONS with its memory (`mamba_memory`),
        and the gate's attention share `gate_attention_share` (mean α). The averaged memories (and exp(−Δ̄)) are
        computed from the layer-averaged Δ̄ and Ā.

        The critics' training noise (goal dequantisation, CVAE sample) is drawn from a fixed seed on a forked RNG,
        so validation is comparable over time and leaves the training random stream (and resume) untouched."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            metrics, stats = self.losses(batch)
        tokens = token_mask(batch["mask"], 3)
        per_layer: dict[str, list[torch.Tensor]] = defaultdict(list)
        for i, (layer, block) in enumerate(zip(stats, self.model.backbone.blocks, strict=True)):
            values = mamba_memory(block.mamba.decay_means(layer["delta"], tokens)) if "delta" in layer else {}
            if "gate" in layer:
                values["gate_attention_share"] = masked_mean(layer["gate"], tokens)
            for key, value in values.items():
                metrics[f"{key}/layer{i}"] = value
                per_layer[key].append(value)
        averaged = {key: torch.stack(per_layer[key]).mean() for key in (*LAYER_MEANS, "gate_attention_share")
                    if per_layer[key]}
        if "delta_mean" in averaged:
            averaged = mamba_memory(averaged)
        return metrics_to_floats({**metrics, **averaged})

    def policy(self) -> QHyerPolicy:
        return QHyerPolicy(self)

    # --- inference -------------------------------------------------------------------------------------------
    def conditioning_value(self, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Stage one of inference: the Q token of the current step, (b,), from standardised s, g (b, ·).

        'rtg' asks for `rtg_target` on every step, rewards received or not: a training return-to-go is 1 while the
        relabelled goal is still ahead and the training episode ends at the goal, so 0 only ever marked goals behind
        the step or in another episode (baselines/sequence.py `SequenceAgent.spent_reward`, the same for DT/QT/LSDT).
        Subtracting Maze2d's reward (1 on every step inside the goal radius) would say "irrelevant goal" from the
        first step at the goal on, while D4RL's score counts the steps spent there."""
        if self.q_head is not None:
            return self.q_head(s, g).clamp(-self.cfg.q_clip, self.cfg.q_clip)
        if self.cfg.conditioning == "rtg":
            return torch.full((len(s),), self.cfg.rtg_target, dtype=s.dtype, device=s.device)
        return torch.zeros(len(s), device=s.device)


# Ā_t definitions, each a candidate reading of the paper's "mean Ā_t" (docs/qhyer.md, Instrumentation): the mean of
# exp(Δ_t A) over all N state dims ('mean_state'), at each channel's slowest state as trained, min_n |A_n|
# ('slowest_state'), and exp(−Δ̄), Ā at A = −1 from the mean Δ ('exp_mean_delta': the one reading under which a
# reported Δ̄ alone fixes Ā).
ABAR_DEFINITIONS = ("mean_state", "slowest_state", "exp_mean_delta")
LAYER_MEANS = ("delta_mean", "abar_mean_state", "abar_slowest_state")  # what Mamba.decay_means returns
TOKENS_PER_STEP = 3  # (Q_t, [s_t; g], a_t)


def mamba_memory(means: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`means` with LAYER_MEANS → plus abar_exp_mean_delta = exp(−delta_mean) and, for each Ā definition, the
    effective memory 1/(1 − Ā) in tokens and in timesteps (tokens / 3: Ā is applied once per token)."""
    out = {**means, "abar_exp_mean_delta": torch.exp(-means["delta_mean"])}
    for definition in ABAR_DEFINITIONS:
        memory = 1.0 / (1.0 - out[f"abar_{definition}"])
        out[f"memory_tokens_{definition}"], out[f"memory_steps_{definition}"] = memory, memory / TOKENS_PER_STEP
    return out


def _decay_groups(module: nn.Module, extra: nn.Module | None, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices, none on biases, norms, D and A_log (mamba_ssm's `_no_weight_decay`)."""
    decay, no_decay = [], []
    for name, p in [*module.named_parameters(), *(extra.named_parameters() if extra is not None else ())]:
        (decay if p.ndim >= 2 and not name.endswith("A_log") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]



class QHyerPolicy:
    """`qhyer.rollout.Policy` for QHyer: two-stage inference, Q̂_φ(s_t, g) placed as the Q token, then a_t.

    The Q tokens of past steps are the values this policy placed there (kept per episode since `reset`).
    Context handling matches training, where every window starts with an empty history:
      t < K   step mode: the backbone consumes a_{t−1}, Q_t, [s_t; g] one token at a time (KV cache, Mamba conv
              and SSM states). That equals the windowed forward on the left-padded window of training exactly.
      t ≥ K   the windowed forward on the last K steps (window_from_history), recomputed every step: a recurrent
              state cannot forget tokens older than K, and the model never saw a longer history in training.
    """

    def __init__(self, agent: QHyerAgent):
        self.agent, self.goal_rep = agent, agent.cfg.goal_rep
        self.q_history: torch.Tensor | None = None
        self.cache: list[dict] = []

    def reset(self, batch_size: int) -> None:
        self.q_history = torch.zeros(batch_size, 0, device=self.agent.device)
        self.cache = self.agent.model.backbone.initial_cache(batch_size)

    @torch.no_grad()
    def act(self, step: StepInput) -> np.ndarray:
        agent = self.agent
        s, g = agent.normalize_obs(self._tensor(step.observations)), agent.normalize_goal(self._tensor(step.goals))
        q = agent.conditioning_value(s, g)                                        # stage 1: the Q token
        self.q_history = torch.cat([self.q_history, q[:, None]], 1)
        if step.t < agent.cfg.context_len:
            hidden = self._step_mode(step, torch.cat([s, g], -1), q)
        else:
            hidden = self._windowed(step, g)
        mean, _ = agent.model.action_head(hidden)                                 # stage 2: the action
        return mean.cpu().numpy()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.agent.device)

    def _step_mode(self, step: StepInput, state_goal: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Feed a_{t−1}, Q_t, [s_t; g] to the cached backbone → hidden state of [s_t; g], (b, D)."""
        model, t = self.agent.model, step.t
        if t > 0:
            model.step(self.cache, ACTION, self._tensor(step.history_actions[:, -1]), t - 1)
        model.step(self.cache, Q, q[:, None], t)
        return model.step(self.cache, STATE_GOAL, state_goal, t)

    def _windowed(self, step: StepInput, g: torch.Tensor) -> torch.Tensor:
        """The training-time forward on the last K steps (left-padded while t < K) → hidden state of [s_t; g]."""
        agent, k = self.agent, self.agent.cfg.context_len
        window = window_from_history(step, k, agent.device)
        q = F.pad(self.q_history[:, -k:], (k - min(k, self.q_history.shape[1]), 0))
        state_goal = torch.cat([agent.normalize_obs(window["observations"]), g[:, None].expand(-1, k, -1)], -1)
        return agent.model(q, state_goal, window["actions"], window["timesteps"], window["mask"])[0][:, -1]
