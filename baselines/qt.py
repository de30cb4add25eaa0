"""Q-value Regularized Transformer (QT; Hu et al., arXiv 2405.17098; charleshsc/QT).

Actor: DT conditioned on returns-to-go (`baselines/sequence.py`; QT decision_transformer/models/ql_DT.py), also
predicting the next state from the action token. Critic: two Mish MLPs on [s; g; a] with Polyak targets, trained by
QT's n-step TD inside the window (`td_targets`, decision_transformer/training/ql_trainer.py with `--k_rewards
--use_discount`, set in every run.sh line); an EMA copy of the actor supplies the bootstrap action. Actor loss =
BC (action MSE + next-state MSE) + η · (−Q1 / |Q2|.detach()) with the two critics' roles swapped at random.
Inference scores candidate returns-to-go with the target critic (`QTAgent.act`, ql_DT.py `get_action`).

Adaptations to sparse 0/1 goal rewards (protocol 'relabelled'; stated, not QT's): candidate returns are QT's own
AntMaze list (experiment.py `env_targets` with scale 1, the QT setting whose returns are 0/1); the TD recursion also
stops at goal-reaching steps (see `td_targets`). Protocol 'source' (D4RL): experiment.py's `env_targets` and `scale`
per family, D4RL's rewards (the critic regresses them unscaled, as ql_trainer.py), no goal input, run.sh's per-maze
eta / grad_norm / max_iters, and its LR schedule: cosine over T_max = max_iters iterations of 1000 updates, stepped
once per iteration (ql_trainer.py l.70-72, 112-117). run.sh stops every Maze2d run early (`--early_stop
--early_epoch 50`: experiment.py l.384-403 breaks after the iteration with index 50), i.e. after 51 x 1000 = 51,000
updates, with the LR still at 0.48x (max_iters 100) or 0.975x (max_iters 500) its start; the workflow's source study
trains QT that long (workflow/config/budgets/paper.yaml `source_protocol`). Deviation: windows come from the shared
`WindowSampler` (ending at a uniformly drawn row, reaching back K rows), where QT's `get_batch` (experiment.py
l.239-285) draws a start row (trajectories ∝ length) and reaches forward, left-padding a window the trajectory's
end cuts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from baselines.markov import frozen_call, frozen_copy, polyak_update
from baselines.sequence import CosineDecayConfig, SequenceAgent, gpt_init, gpt_model, warmup_cosine_schedule
from qhyer.agent import DataInfo, metrics_to_floats
from qhyer.errors import ConfigError
from qhyer.models.layers import masked_mean, mlp


@dataclass
class QTConfig(CosineDecayConfig):
    """QT experiment.py argparse defaults and run.sh flags unless noted; `None` = per dataset family below.
    Fields not listed equal QT's: --K 20, --dropout 0.1, --weight_decay 1e-4 (QT's GPT-2 uses ReLU; ours GELU)."""

    name: str = "qt"
    batch_size: int = 256             # --batch_size 256
    embed_dim: int = 256              # --embed_dim 256 (also the critic's hidden width)
    n_layers: int = 4                 # --n_layer 4
    n_heads: int = 4                  # --n_head 4
    lr: float = 3e-4                  # --learning_rate 3e-4 (Adam, L2 weight decay --weight_decay 1e-4 as DT)
    warmup_steps: int = 0             # ql_trainer.py uses no warmup (--warmup_steps is parsed but unused)
    grad_clip: float | None = None    # run.sh --grad_norm (actor and critic), per family
    eta: float | None = None          # run.sh --eta: weight of the Q loss, per family
    # run.sh --lr_decay: cosine to --lr_min 0 over T_max = --max_iters iterations of --num_steps_per_iter 1000
    # updates, stepped once per iteration (ql_trainer.py l.70-72, 112-117). Relabelled: over the whole run
    # (lr_decay_steps 0 = train.steps), stepped every update (an adaptation: the budget sets the run's length).
    lr_decay_steps: int | None = None
    lr_decay_every: int | None = None
    critic_lr: float = 3e-4           # ql_trainer.py: critic Adam lr 3e-4, no weight decay
    tau: float = 0.005                # --tau 0.005 (critic target Polyak rate)
    ema_decay: float = 0.995          # ql_trainer.py EMA(0.995)
    ema_start: int = 1000             # step_start_ema 1000
    ema_every: int = 5                # update_ema_every 5
    n_candidates: int = 50            # ql_DT.py get_action: 50 return-to-go candidates per step
    candidate_returns: tuple[float, ...] | None = None  # target returns (reward units); None = the protocol's
    candidate_noise: float = 0.1      # get_action: N(0, 0.1) on the current return of rows after the targets
    # discount (SequenceConfig, 0.99) is also QT's TD discount: --discount 0.99

    # experiment.py antmaze env_targets (scale 1): the QT setting whose returns are 0/1
    RELABELLED_DEFAULTS: ClassVar[dict[str, Any]] = {**CosineDecayConfig.RELABELLED_DEFAULTS,
                                                     "candidate_returns": (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3),
                                                     "lr_decay_steps": 0, "lr_decay_every": 1}
    # experiment.py l.141-157: maze2d env_targets [300, 200, 150, 100, 50, 20] with scale 10, antmaze [1., 0.9, 0.8,
    # 0.7, 0.6, 0.5, 0.3] with scale 1; its D4RL states carry no goal. run.sh maze2d medium (l.150-155) and antmaze
    # medium-diverse (l.192-197): --max_iters 100 --num_steps_per_iter 1000 (cosine T_max 100 iterations).
    SOURCE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "maze2d": {"candidate_returns": (300.0, 200.0, 150.0, 100.0, 50.0, 20.0), "reward_scale": 10.0,
                   "goal_input": "none", "lr_decay_steps": 100 * 1000, "lr_decay_every": 1000},
        "antmaze": {"candidate_returns": (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3), "reward_scale": 1.0,
                    "goal_input": "none", "lr_decay_steps": 100 * 1000, "lr_decay_every": 1000},
    }
    # run.sh, where a maze differs from its family's values above and in FAMILY_DEFAULTS (medium's):
    SOURCE_DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "maze2d-umaze-v1": {"grad_clip": 20.0},                          # l.136-141: --eta 5.0 --grad_norm 20.0
        "maze2d-large-v1": {"eta": 4.0, "lr_decay_steps": 500 * 1000},   # l.164-169: --eta 4.0, --max_iters 500
        "antmaze-umaze-v2": {"eta": 0.05, "lr_decay_steps": 500 * 1000},        # l.178-183
        "antmaze-umaze-diverse-v2": {"lr_decay_steps": 500 * 1000},             # l.185-190 (--eta 0.01)
        # l.199-204 (--max_iters 100); its --reward_tune cql_antmaze ((r − 0.5)·4) is not implemented
        "antmaze-large-diverse-v2": {"eta": 0.005},
    }

    FAMILY_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        # run.sh maze2d medium l.150-155 (under 'source' umaze and large take their own: SOURCE_DATASET_DEFAULTS).
        "maze2d": {"eta": 5.0, "grad_clip": 9.0},
        # run.sh antmaze umaze-diverse / medium-diverse l.185-197 (umaze 0.05, large-diverse 0.005).
        "antmaze": {"eta": 0.01, "grad_clip": 9.0},
        # Assumption (QT has no OGBench runs): play takes the AntMaze-diverse value, the QT setting closest to
        # 0/1 goal rewards on multi-goal data; noisy ×10 because OGBench's own tuning moves 10× weight from BC to
        # Q on noisy data (GCIQL alpha 0.3 → 0.03, impls/hyperparameters.sh). Clip 9, QT's most common value.
        "ogbench_play": {"eta": 0.01, "grad_clip": 9.0},
        "ogbench_noisy": {"eta": 0.1, "grad_clip": 9.0},
    }


class DoubleQ(nn.Module):
    """QT `Critic`: two independent MLPs, 3 hidden layers of `hidden` units with Mish; forward → (2, …)."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.q1, self.q2 = (mlp(in_dim, (hidden,) * 3, 1, activation=nn.Mish) for _ in range(2))

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([states, actions], dim=-1)
        return torch.stack([self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)])


def td_targets(rewards: torch.Tensor, terminals: torch.Tensor, last_value: torch.Tensor,
               discount: float) -> torch.Tensor:
    """QT's n-step targets inside a window of length K, as the backward recursion
    y_{K−1} = r_{K−1} if terminal_{K−1} else last_value,   y_t = r_t + γ (1 − terminal_t) y_{t+1}.

    Without terminals this is exactly ql_trainer.py's closed form y_t = Σ_{j=t}^{K−2} γ^{j−t} r_j + γ^{K−1−t} V'
    (last reward zeroed, V' = min Q' at the last window state). Adaptation to goal rewards: a goal-reaching step ends
    the return, and a window ending on one keeps its reward, where QT would zero it and multiply V' by
    not_done = 0, erasing the only positive target of such a window. rewards, terminals (B, K); last_value (B,).
    """
    y = torch.where(terminals[:, -1], rewards[:, -1], last_value)
    targets = [y]
    for t in range(rewards.shape[1] - 2, -1, -1):
        y = rewards[:, t] + discount * (~terminals[:, t]) * y
        targets.append(y)
    return torch.stack(targets[::-1], dim=1)


class QTAgent(SequenceAgent):
    loss_functions = ("critic_loss", "actor_loss")  # what `update` calls (qhyer.agent.Agent.wrap_loss_functions)
    float32_calls = ("critic.forward", "critic_target.forward")

    def __init__(self, cfg: QTConfig, info: DataInfo):
        super().__init__(cfg, info)
        if cfg.n_candidates <= len(cfg.candidate_returns):
            raise ConfigError(f"qt.n_candidates must exceed the {len(cfg.candidate_returns)} candidate_returns")
        self.model = gpt_model(cfg, self.state_dim, info)
        self.state_head = nn.Linear(cfg.embed_dim, info.obs_dim)  # QT `predict_state`, read at the action token
        self.state_head.apply(gpt_init)
        self.ema_model = frozen_copy(self.model)  # QT: deepcopy at init, averaged only after ema_start
        self.critic = DoubleQ(self.state_dim + info.action_dim, cfg.embed_dim)
        self.critic_target = frozen_copy(self.critic)
        self.actor_params = [*self.model.parameters(), *self.state_head.parameters()]
        actor_opt = torch.optim.Adam(self.actor_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.optimizers = {"actor": actor_opt, "critic": critic_opt}
        self.schedulers = {key: warmup_cosine_schedule(opt, cfg.warmup_steps, cfg.lr_decay_steps, cfg.lr_decay_every)
                           for key, opt in self.optimizers.items()}

    # --- losses --------------------------------------------------------------------------------------
    def critic_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        states, actions, mask = self.states(batch), batch["actions"].float(), batch["mask"]
        with torch.no_grad():
            next_action = self.predict_actions(self.ema_model, batch, batch["returns_to_go"])[:, -1]
            last_value = self.critic_target(states[:, -1], next_action).min(0).values
            # WindowSampler: done = the successor is the goal row (reward 1) or the episode's last row.
            target = td_targets(batch["rewards"].float(), batch["dones"].bool(), last_value, self.cfg.discount)
        q = self.critic(states, actions)                                                  # (2, B, K)
        # QT regresses positions [:-1] only: the last one is the bootstrap state.
        td = (q - target)[..., :-1].pow(2)
        loss = masked_mean(td[0], mask[:, :-1]) + masked_mean(td[1], mask[:, :-1])
        return {"critic_loss": loss, "q_mean": masked_mean(q[0], mask), "target_mean": masked_mean(target, mask)}

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        states, actions, mask = self.states(batch), batch["actions"].float(), batch["mask"]
        h = self.hidden(self.model, batch, batch["returns_to_go"])
        pred = self.model.action_head(h[:, :, 1])
        action_mse = masked_mean((pred - actions).pow(2).mean(-1), mask)
        next_obs = self.normalize_obs(batch["observations"][:, 1:].float())
        state_mse = masked_mean((self.state_head(h[:, :-1, 2]) - next_obs).pow(2).mean(-1), mask[:, :-1])
        real = mask.flatten()
        q = frozen_call(self.critic, states.flatten(0, 1)[real], pred.flatten(0, 1)[real])  # (2, N)
        first, second = (q[0], q[1]) if random.random() > 0.5 else (q[1], q[0])  # QT's random role swap
        q_loss = -first.mean() / second.abs().mean().detach()
        bc = action_mse + state_mse
        return {"actor_loss": bc + self.cfg.eta * q_loss, "bc_loss": bc, "action_mse": action_mse,
                "state_mse": state_mse, "q_loss": q_loss}

    # --- training ------------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        # ql_trainer.py `train_step` order: critic step, actor step, EMA, critic target Polyak.
        critic_metrics = self.critic_loss(batch)
        self._step("critic", list(self.critic.parameters()), critic_metrics["critic_loss"])
        actor_metrics = self.actor_loss(batch)
        self._step("actor", self.actor_params, actor_metrics["actor_loss"])
        if step > self.cfg.ema_start and step % self.cfg.ema_every == 0:
            polyak_update(self.ema_model, self.model, 1.0 - self.cfg.ema_decay)
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        return metrics_to_floats({**critic_metrics, **actor_metrics})

    def _step(self, key: str, params: list[nn.Parameter], loss: torch.Tensor) -> None:
        opt = self.optimizers[key]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()
        self.schedulers[key].step()

    @torch.no_grad()
    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return metrics_to_floats({**self.critic_loss(batch), **self.actor_loss(batch)})

    # --- acting --------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, window: dict[str, torch.Tensor], spent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """QT `get_action`, batched over episodes. Per episode, C candidate return sequences: the target returns
        repeated C // n_targets times (each minus the reward received so far, scaled: `conditioning`), the rest
        N(0, 1); N(0, 0.1) on the current return of every row after the first n_targets; the last row's current
        return replaced by the target critic's min Q(s_{t−1}, a_{t−1}) − r_{t−1} (from t = 1: QT reads padding at
        t = 0; r is the reward `spent_reward` counts, none under 'relabelled'). Each row predicts a_t; one is sampled
        by softmax over min Q'(s_t, â)."""
        cfg = self.cfg
        b, k = spent.shape
        c, device = cfg.n_candidates, spent.device
        targets = torch.tensor(cfg.candidate_returns, device=device).repeat_interleave(c // len(cfg.candidate_returns))
        rtg = torch.randn(b, c, k, device=device, generator=generator)
        rtg[:, : len(targets)] = self.conditioning(targets[:, None], spent[:, None])
        rtg[:, len(cfg.candidate_returns):, -1] += cfg.candidate_noise * torch.randn(
            b, c - len(cfg.candidate_returns), device=device, generator=generator)
        states = self.states(window)                                                      # (B, K, S)
        if k > 1:
            previous = self.critic_target(states[:, -2], window["actions"][:, -2].float()).min(0).values
            estimate = previous - (spent[:, -1] - spent[:, -2]) / cfg.reward_scale
            rtg[:, -1, -1] = torch.where(window["mask"][:, -2], estimate, rtg[:, -1, -1])
        repeated = {key: value.repeat_interleave(c, dim=0) for key, value in window.items()}
        actions = self.predict_actions(self.model, repeated, rtg.flatten(0, 1))[:, -1].view(b, c, -1)
        q = self.critic_target(states[:, -1, None].expand(-1, c, -1), actions).min(0).values   # (B, C)
        choice = torch.multinomial(q.softmax(-1), 1, generator=generator).squeeze(-1)
        return actions[torch.arange(b, device=device), choice]
