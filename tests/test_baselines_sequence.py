"""DT, QT and LSDT (baselines/{dt,qt,lsdt,sequence}.py) on a tiny synthetic episode dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.lsdt import DynamicConv
from baselines.qt import td_targets
from qhyer.agent import DataInfo
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.methods import method_classes
from qhyer.models.layers import attention_mask
from qhyer.rollout.policy import Policy, StepInput

SPEC = DatasetSpec(name="synthetic-walk", family="ogbench", env_id="synthetic", kind="play", obs_dim=3,
                   action_dim=2, goal_dims=(0, 1), eval_max_steps=30)
K = 5
TINY = {"context_len": K, "embed_dim": 16, "n_layers": 1, "batch_size": 16, "lr": 1e-3, "warmup_steps": 1}
SMALL = {"dt": TINY, "lsdt": {**TINY, "n_heads": 2, "conv_dim": 8},
         "qt": {**TINY, "n_heads": 2, "n_candidates": 8, "ema_start": 0, "ema_every": 1}}
LOSS_KEY = {"dt": "loss", "lsdt": "loss", "qt": "bc_loss"}


def walk_dataset(lengths=(14, 9, 17), seed=0) -> EpisodeDataset:
    """A 2-D point moving by its action each step, plus a noise feature."""
    rng = np.random.default_rng(seed)
    obs, actions = [], []
    for n in lengths:
        acts = rng.uniform(-1, 1, (n, 2))
        xy = np.cumsum(np.concatenate([rng.normal(size=(1, 2)), 0.1 * acts[:-1]]), axis=0)
        obs.append(np.concatenate([xy, rng.normal(size=(n, 1))], axis=1))
        actions.append(acts)
    return EpisodeDataset(name=SPEC.name, observations=np.concatenate(obs), actions=np.concatenate(actions),
                          episode_ends=np.cumsum(lengths), goal_dims=np.array(SPEC.goal_dims))


def make_agent(method: str, ds: EpisodeDataset, goal_rep: str = "full", **overrides):
    config_cls, agent_cls = method_classes(method)
    cfg = config_cls(goal_rep=goal_rep, **{**SMALL[method], **overrides}).for_family("ogbench_play").for_budget(100)
    return agent_cls(cfg, DataInfo.from_dataset(SPEC, ds, goal_rep))


def step_input(ds: EpisodeDataset, t: int, goal_dim: int, rewards: np.ndarray | None = None) -> StepInput:
    b = 3
    history = np.stack([ds.observations[i: i + t + 1] for i in range(b)])
    return StepInput(observations=history[:, -1], goals=np.full((b, goal_dim), 0.5, np.float32), t=t,
                     history_observations=history, history_actions=np.stack([ds.actions[i: i + t] for i in range(b)]),
                     history_rewards=np.zeros((b, t), np.float32) if rewards is None else rewards,
                     active=np.ones(b, bool))


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
def test_trains_and_acts(method):
    torch.manual_seed(0)
    ds = walk_dataset()
    agent = make_agent(method, ds, goal_rep="task")
    sampler = agent.make_sampler(ds, seed=0)
    batch = sampler.sample(agent.cfg.batch_size)
    assert batch["observations"].shape == (16, K, 3) and batch["goals"].shape == (16, 2)
    losses = []
    for step in range(40):  # one fixed batch: the loss must go down when the model fits it
        metrics = agent.update(batch, step)
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        losses.append(metrics[LOSS_KEY[method]])
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    agent.eval()
    val = agent.validation_metrics(sampler.sample(8))
    assert val.keys() == metrics.keys() and all(np.isfinite(v) for v in val.values())

    policy = agent.policy()
    assert isinstance(policy, Policy) and policy.goal_rep == "task"
    policy.reset(3)
    for t in (0, 2, 7):  # fewer steps than the context, then more
        actions = policy.act(step_input(ds, t, goal_dim=2))
        assert actions.shape == (3, 2) and actions.dtype == np.float32 and np.all(np.abs(actions) <= 1.0)
    policy.reset(3)
    first = policy.act(step_input(ds, 7, 2))
    policy.reset(3)
    assert np.array_equal(policy.act(step_input(ds, 7, 2)), first)  # reproducible after reset (QT samples)


def test_td_targets_by_hand():
    g = 0.5
    rewards = torch.zeros(3, 4)
    rewards[1, 3] = 1.0  # window 1 ends on the step whose successor is the goal
    rewards[2, 1] = 1.0  # window 2 reaches its goal mid-window
    terminals = rewards.bool()
    targets = td_targets(rewards, terminals, last_value=torch.tensor([0.8, 0.8, 0.8]), discount=g)
    expected = torch.tensor([[0.8 * g**3, 0.8 * g**2, 0.8 * g, 0.8],   # pure bootstrap γ^(K−1−t)·V'
                             [g**3, g**2, g, 1.0],                   # the goal reward is kept, no bootstrap
                             [g * 1.0, 1.0, 0.8 * g, 0.8]])          # stops at the goal step
    assert torch.allclose(targets, expected)
    # Without terminals: QT ql_trainer.py closed form Σ_{j=t}^{K−2} γ^{j−t} r_j + γ^{K−1−t} V' (last reward zeroed).
    r = torch.rand(2, 6)
    v = torch.rand(2)
    closed = torch.stack([sum(g ** (j - t) * r[:, j] for j in range(t, 5)) + g ** (5 - t) * v for t in range(6)], 1)
    assert torch.allclose(td_targets(r, torch.zeros(2, 6, dtype=torch.bool), v, g), closed)


def test_qt_critic_regresses_window_targets():
    ds = walk_dataset()
    agent = make_agent("qt", ds, discount=0.5)
    batch = agent.make_sampler(ds, seed=0).sample(4)
    batch["mask"][:] = torch.tensor([False, True, True, True, True])
    batch["rewards"][:] = torch.tensor([0.0, 0, 0, 0, 1])
    batch["dones"][:] = batch["rewards"].bool()
    batch["rewards"][1:, 4] = batch["dones"][1:, 4] = 0  # only window 0 ends at its goal
    agent.critic_target.forward = lambda states, actions: torch.full((2, len(states)), 0.8)
    metrics = agent.critic_loss(batch)
    # Real steps 1..4: window 0 → (γ³, γ², γ, 1); windows 1-3 → 0.8·(γ³, γ², γ, 1).
    expected = (0.125 + 0.25 + 0.5 + 1) / 4 * (1 + 3 * 0.8) / 4
    assert metrics["target_mean"].item() == pytest.approx(expected)


def test_lsdt_convolution_is_causal_with_six_taps():
    torch.manual_seed(0)
    conv = DynamicConv(dim=8, kernel_size=11, kernel_dropout=0.2).eval()
    length, s = 20, 8
    x = torch.randn(2, length, 8)
    mask = attention_mask(None, length, x.device)
    base = conv(x, mask)
    x2 = x.clone()
    x2[:, s] += 1.0
    changed = (conv(x2, mask) - base).abs().amax(dim=(0, 2)) > 1e-6
    # Token s reaches outputs s … s + 5 only: causal, and (k + 1) / 2 = 6 taps for k = 11.
    assert changed.tolist() == [s <= t <= s + 5 for t in range(length)]


def test_lsdt_ignores_future_and_padding():
    torch.manual_seed(0)
    ds = walk_dataset()
    agent = make_agent("lsdt", ds).eval()
    batch = agent.make_sampler(ds, seed=0).sample(8)
    batch["mask"][:, :2] = False
    base = agent.predict_actions(agent.model, batch, batch["returns_to_go"])
    edited = {key: value.clone() for key, value in batch.items()}
    edited["observations"][:, :2] += 5.0   # padded steps
    edited["observations"][:, -1] += 5.0   # the future of every earlier step
    out = agent.predict_actions(agent.model, edited, edited["returns_to_go"])
    assert torch.allclose(out[:, 2:-1], base[:, 2:-1], atol=1e-6)
    assert not torch.allclose(out[:, -1], base[:, -1])


@pytest.mark.parametrize("method", ["qt", "lsdt"])
def test_cosine_decay_spans_the_run_unless_set(method):
    config_cls, agent_cls = method_classes(method)
    cfg = config_cls(**{**SMALL[method], "warmup_steps": 0}).for_family("ogbench_play")
    assert cfg.for_budget(3000).lr_decay_steps == 3000
    assert config_cls(lr_decay_steps=500).for_budget(3000).lr_decay_steps == 500
    agent = agent_cls(cfg.for_budget(10), DataInfo.from_dataset(SPEC, walk_dataset(), "full"))
    key = next(iter(agent.schedulers))
    optimizer, scheduler = agent.optimizers[key], agent.schedulers[key]
    factors = []
    for _ in range(10):
        factors.append(optimizer.param_groups[0]["lr"] / cfg.lr)
        optimizer.step()
        scheduler.step()
    assert factors[0] == pytest.approx(1.0) and factors[5] == pytest.approx(0.5)
    assert optimizer.param_groups[0]["lr"] == 0.0


# --- goal relabelling as config fields; the 'source' protocol (D4RL rewards, scaled RTG, infos/goal) --------------
MAZE = DatasetSpec(name="synthetic-maze", family="maze2d", env_id="synthetic", kind="maze2d", obs_dim=3, action_dim=2,
                   goal_dims=(0, 1), eval_max_steps=30)


def d4rl_like_dataset(lengths=(6, 9, 5), seed=1) -> EpisodeDataset:
    """walk_dataset with D4RL's extra arrays: 0/1 rewards, a recorded goal per row (one per episode), terminals."""
    ds = walk_dataset(lengths, seed)
    rng = np.random.default_rng(seed)
    episode_goals = rng.uniform(-2, 2, (len(lengths), 2)).astype(np.float32)
    return EpisodeDataset(name=MAZE.name, observations=ds.observations, actions=ds.actions,
                          episode_ends=ds.episode_ends, goal_dims=ds.goal_dims,
                          rewards=rng.integers(0, 2, len(ds)).astype(np.float32),
                          meta={"goal": episode_goals[ds.episode_index], "terminals": np.zeros(len(ds), bool)})


def source_agent(method: str, ds: EpisodeDataset, **overrides):
    config_cls, agent_cls = method_classes(method)
    cfg = config_cls(protocol="source", **{**SMALL[method], **overrides}).for_family("maze2d").for_budget(100)
    return agent_cls(cfg, DataInfo.from_dataset(MAZE, ds, cfg.goal_rep))


def test_goal_relabelling_is_config_and_drives_the_sampler():
    import dataclasses

    ds = walk_dataset()
    for method in ("dt", "qt", "lsdt"):
        fields = dataclasses.asdict(make_agent(method, ds).cfg)  # what method_config.json records
        assert {key: fields[key] for key in ("p_current", "p_future_geometric", "p_future_uniform", "p_random",
                                             "discount")} == {"p_current": 0.0, "p_future_geometric": 0.5,
                                                              "p_future_uniform": 0.3, "p_random": 0.2,
                                                              "discount": 0.99}
    # The fields reach the sampler: future goals lie ahead of the window's last step (RTG 1, except when that step
    # ends its episode: 3 of the 40 rows), random ones seldom do.
    def reached(**goal_mix) -> float:
        agent = make_agent("dt", ds, p_current=0.0, **goal_mix)
        return agent.make_sampler(ds, seed=0).sample(400)["returns_to_go"][:, -1].mean().item()

    assert reached(p_future_geometric=0.0, p_future_uniform=1.0, p_random=0.0) > 0.85
    assert reached(p_future_geometric=0.0, p_future_uniform=0.0, p_random=1.0) < 0.3
    with pytest.raises(ConfigError):
        make_agent("dt", ds, p_random=0.5)  # probabilities no longer sum to 1


def test_source_windows_carry_scaled_d4rl_returns_and_recorded_goals():
    ds = d4rl_like_dataset()
    agent = source_agent("lsdt", ds)
    assert agent.cfg.reward_scale == 1000.0 and agent.cfg.target_return == 300.0 and agent.cfg.goal_input == "d4rl"
    sampler = agent.make_sampler(ds, seed=0)
    batch = sampler.sample(32)
    # The last row of each window, found back by its timestep and observation.
    for b in range(32):
        mask = batch["mask"][b].numpy()
        for k in np.flatnonzero(mask):
            row = int(np.flatnonzero((ds.observations == batch["observations"][b, k].numpy()).all(1))[0])
            last = ds.row_last[row]
            assert batch["returns_to_go"][b, k].item() == pytest.approx(ds.rewards[row: last + 1].sum() / 1000.0)
            assert batch["rewards"][b, k].item() == ds.rewards[row]
            np.testing.assert_array_equal(batch["goals"][b, k].numpy(), ds.meta["goal"][row])
        assert (batch["goals"][b, ~mask] == 0).all() and (batch["returns_to_go"][b, ~mask] == 0).all()
    # The goal input is infos/goal: the state token is [s; infos/goal], standardised.
    states = agent.states(batch)
    expected_goal = (batch["goals"] - agent.goal_mean) / agent.goal_std
    torch.testing.assert_close(states[..., 3:], expected_goal)


def test_source_protocol_is_d4rl_only():
    for method in ("dt", "qt", "lsdt"):
        config_cls, _ = method_classes(method)
        with pytest.raises(ConfigError) as err:
            config_cls(protocol="source").for_family("ogbench_play")
        assert "protocol=source" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        method_classes("dt")[0](protocol="source", goal_input="relabelled").for_family("maze2d")
    with pytest.raises(ConfigError):
        method_classes("dt")[0](protocol="sourse").for_family("maze2d")


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
@pytest.mark.parametrize("protocol", ["relabelled", "source"])
def test_one_training_step_under_each_protocol(method, protocol):
    torch.manual_seed(0)
    ds = d4rl_like_dataset()
    config_cls, agent_cls = method_classes(method)
    cfg = config_cls(protocol=protocol, **SMALL[method]).for_family("maze2d").for_budget(100)
    agent = agent_cls(cfg, DataInfo.from_dataset(MAZE, ds, cfg.goal_rep))
    expected_state = 3 + (2 if protocol == "source" and method == "lsdt" else 0 if protocol == "source" else 3)
    assert agent.state_dim == expected_state
    metrics = agent.update(agent.make_sampler(ds, seed=0).sample(8), step=0)
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    policy = agent.policy()
    policy.reset(3)
    goal_dim = 2 if cfg.goal_rep == "task" else 3
    actions = policy.act(step_input(ds, 4, goal_dim, rewards=np.ones((3, 4), np.float32)))
    assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 1)


def test_source_conditioning_is_target_minus_reward_scaled_unfloored():
    ds = d4rl_like_dataset()
    agent = source_agent("dt", ds).eval()  # maze2d: target 300, scale 10
    seen = []
    forward = agent.model.forward
    agent.model.forward = lambda rtg, *args: seen.append(rtg.clone()) or forward(rtg, *args)
    policy = agent.policy()
    policy.reset(3)
    rewards = np.zeros((3, 4), np.float32)
    rewards[1] = 1.0
    rewards[2, 0] = 400.0  # more reward than the target: the source protocol does not floor at 0
    policy.act(step_input(ds, 4, goal_dim=2, rewards=rewards))
    rtg, = seen
    torch.testing.assert_close(rtg, torch.tensor([[30.0] * 5, [30.0, 29.9, 29.8, 29.7, 29.6],
                                                  [30.0, -10.0, -10.0, -10.0, -10.0]]))
