"""QHyer: config switches, critics, causality, step mode = windowed forward, every backbone × conditioning trains
and acts, validation instrumentation, and a learning check on a toy dataset whose answer is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from baselines.dt import DTAgent, DTConfig
from qhyer.agent import DataInfo
from qhyer.algorithm import CONDITIONINGS, DecisionModel, QHyerAgent, QHyerConfig
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.models.critics import FlowCritic, expectile_loss
from qhyer.models.hybrid import BACKBONES
from qhyer.rollout.policy import StepInput

SPEC = get_spec("maze2d-umaze-v1")  # only its family (τ default) and evaluation horizon are used



def random_walks(episodes: int = 6, length: int = 15, seed: int = 0) -> EpisodeDataset:
    rng = np.random.default_rng(seed)
    obs = np.cumsum(rng.normal(0, 0.1, (episodes * length, 4)), 0)
    return EpisodeDataset("walks", obs, rng.uniform(-1, 1, (episodes * length, 2)),
                          np.arange(length, episodes * length + 1, length), np.array([0, 1]))


def tiny_config(**overrides) -> QHyerConfig:
    sizes = dict(batch_size=8, context_len=4, n_layers=2, embed_dim=16, n_heads=2, d_state=4, critic_hidden=16,
                 flow_layers=2, cvae_latent_dim=4, crl_repr_dim=8, q_head_hidden=(16,), warmup_steps=1)
    return QHyerConfig(**{**sizes, **overrides}).for_family("maze2d")


def make_agent(cfg: QHyerConfig, dataset: EpisodeDataset, seed: int = 0) -> QHyerAgent:
    torch.manual_seed(seed)
    return QHyerAgent(cfg, DataInfo.from_dataset(SPEC, dataset, cfg.goal_rep))


def step_input(dataset: EpisodeDataset, t: int, batch: int = 3) -> StepInput:
    """Step t of `batch` episodes replaying the dataset's first episodes (observations and actions)."""
    length = dataset.episode_ends[0]
    obs = dataset.observations[: batch * length].reshape(batch, length, -1)
    acts = dataset.actions[: batch * length].reshape(batch, length, -1)
    return StepInput(observations=obs[:, t], goals=obs[:, -1], t=t, history_observations=obs[:, :t + 1],
                     history_actions=acts[:, :t], history_rewards=np.zeros((batch, t), np.float32),
                     active=np.ones(batch, bool))


# --- config ------------------------------------------------------------------------------------------------------
def test_tau_family_defaults_and_range():
    assert QHyerConfig().for_family("ogbench_play").expectile_tau == 0.9
    assert QHyerConfig().for_family("ogbench_noisy").expectile_tau == 0.95
    assert QHyerConfig(expectile_tau=0.7).for_family("ogbench_noisy").expectile_tau == 0.7
    assert QHyerConfig(expectile_tau=0.5).for_family("ogbench_play").expectile_tau == 0.5  # mean regression
    for bad in (0.49, 1.0, 1.2, 0.3):
        with pytest.raises(ConfigError, match="expectile_tau"):
            QHyerConfig(expectile_tau=bad).for_family("ogbench_play")
    with pytest.raises(ConfigError, match="expectile_tau.* unset"):
        QHyerAgent(QHyerConfig(), DataInfo.from_dataset(SPEC, random_walks(), "full"))


@pytest.mark.parametrize("field,value", [("backbone", "lstm"), ("conditioning", "diffusion"), ("n_heads", 3),
                                         ("p_random", 0.5)])
def test_invalid_switches_are_config_errors(field, value):
    with pytest.raises(ConfigError):
        QHyerConfig(**{field: value}).for_family("ogbench_play")


# --- critics -------------------------------------------------------------------------------------------------------
def test_expectile_loss_is_asymmetric():
    tau = 0.9
    u = torch.tensor([1.0, -1.0, 2.0, -2.0])
    torch.testing.assert_close(expectile_loss(u, tau), torch.tensor([0.9, 0.1, 3.6, 0.4]))
    # minimiser over c of E L_τ(x − c) for x ∈ {0, 1} equally likely is τ: an upper expectile, above the mean ½
    c = torch.linspace(0, 1, 1001)
    risk = expectile_loss(-c, tau) + expectile_loss(1 - c, tau)
    assert abs(c[risk.argmin()].item() - tau) < 1e-3


@pytest.mark.parametrize("goal_dim", [2, 3])
def test_flow_log_density_is_change_of_variables(goal_dim):
    torch.manual_seed(goal_dim)
    critic = FlowCritic(context_dim=5, goal_dim=goal_dim, hidden=8, n_layers=3, goal_noise=0.0).double()
    with torch.no_grad():  # move away from the near-identity init so every layer matters
        for p in critic.parameters():
            p.add_(0.3 * torch.randn_like(p))
    s, a, g = torch.randn(4, 3).double(), torch.randn(4, 2).double(), torch.randn(4, goal_dim).double()
    flow = critic.flow
    for i in range(4):
        context = flow._embedding_net(torch.cat([s[i], a[i]])[None])
        to_noise = lambda x, c=context: flow._transform(x[None], context=c)[0][0]  # noqa: E731
        z = to_noise(g[i])
        log_det = torch.linalg.slogdet(torch.autograd.functional.jacobian(to_noise, g[i]))[1]
        mean, log_std = flow._distribution._context_encoder(context)[0].chunk(2)
        base = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).sum()
        torch.testing.assert_close(critic.q(s[i:i + 1], a[i:i + 1], g[i:i + 1])[0] * goal_dim, base + log_det)


# --- sequence model ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
def test_causality(backbone):
    cfg = tiny_config(backbone=backbone, dropout=0.0)
    torch.manual_seed(0)
    model = DecisionModel(cfg, DataInfo.from_dataset(SPEC, random_walks(), "full")).eval()
    b, k = 2, 6
    inputs = dict(q=torch.randn(b, k), state_goal=torch.randn(b, k, 8), actions=torch.randn(b, k, 2),
                  timesteps=torch.arange(k).repeat(b, 1), mask=torch.ones(b, k, dtype=torch.bool))
    base = model(**inputs)[0]
    for t in range(k - 1):
        for key in ("q", "state_goal", "actions"):  # every input of step t + 1 ...
            changed = {**inputs, key: inputs[key].clone()}
            changed[key][:, t + 1] += 1.0
            out = model(**changed)[0]
            torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], atol=0, rtol=0)
            first_reader = t + 2 if key == "actions" else t + 1  # a_{t+1} is first read by [s_{t+2}; g]
            if first_reader < k:
                assert not torch.allclose(out[:, first_reader], base[:, first_reader])
        changed = {**inputs, "actions": inputs["actions"].clone()}  # ... and a_t itself, predicted from [s_t; g]
        changed["actions"][:, t] += 1.0
        torch.testing.assert_close(model(**changed)[0][:, :t + 1], base[:, :t + 1], atol=0, rtol=0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_step_mode_equals_windowed_forward(backbone):
    data = random_walks(length=12)
    cfg = tiny_config(backbone=backbone, context_len=5)
    agent = make_agent(cfg, data).eval()
    with torch.no_grad():  # a trained-looking gate and larger Mamba steps than the init
        for p in agent.parameters():
            p.add_(0.1 * torch.randn_like(p))
    policy = agent.policy()
    policy.reset(3)
    for t in range(cfg.context_len):
        step = step_input(data, t)
        stepped = policy.act(step)  # step mode (t < K)
        with torch.no_grad():
            g = agent.normalize_goal(torch.as_tensor(step.goals))
            windowed = agent.model.action_head(policy._windowed(step, g))[0].numpy()
        np.testing.assert_allclose(stepped, windowed, atol=1e-5, rtol=1e-5)


def test_evaluation_outlasting_training_episodes_reuses_the_last_timestep():
    data = random_walks(length=12)                        # training episodes of 12 steps; evaluation may run longer
    agent = make_agent(tiny_config(), data).eval()
    assert agent.model.timestep_embed.num_embeddings == 12
    value = torch.randn(2, 3, 1)
    with torch.no_grad():
        late = agent.model.embed(0, value, torch.tensor([[11, 30, 299]] * 2))
        last = agent.model.embed(0, value, torch.full((2, 3), 11))
    torch.testing.assert_close(late, last)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_variant_trains_and_acts(backbone, conditioning):
    data = random_walks()
    agent = make_agent(tiny_config(backbone=backbone, conditioning=conditioning), data)
    sampler = agent.make_sampler(data, seed=0)
    agent.train()
    for i in range(2):
        metrics = agent.update(sampler.sample(8), i)
        assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert ("loss_critic" in metrics) == (conditioning in ("nf", "crl", "cvae"))
    agent.eval()
    val = agent.validation_metrics(sampler.sample(8))
    assert all(np.isfinite(v) for v in val.values()), val
    policy = agent.policy()
    assert policy.goal_rep == "full"
    policy.reset(3)
    for t in range(agent.cfg.context_len + 2):  # through both modes (t < K and t ≥ K)
        actions = policy.act(step_input(data, t))
        assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 1)


MAMBA_METRICS = ("delta_mean", "abar_mean_state", "abar_slowest_state", "abar_exp_mean_delta",
                 *(f"memory_{unit}_{definition}" for unit in ("tokens", "steps")
                   for definition in ("mean_state", "slowest_state", "exp_mean_delta")))


def test_validation_instrumentation():
    data = random_walks()
    batch = make_agent(tiny_config(), data).make_sampler(data, seed=1).sample(8)
    agent = make_agent(tiny_config(backbone="hybrid"), data).eval()
    rng_before = torch.get_rng_state()
    hybrid = agent.validation_metrics(batch)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training random stream (and resume) is untouched
    for key in (*MAMBA_METRICS, "gate_attention_share"):
        assert key in hybrid and f"{key}/layer0" in hybrid and f"{key}/layer1" in hybrid
    for definition in ("mean_state", "slowest_state", "exp_mean_delta"):
        assert 0 < hybrid[f"abar_{definition}"] <= 1 and hybrid[f"memory_tokens_{definition}"] >= 1
    # each channel's slowest state keeps more than the average over its state dims
    assert hybrid["abar_slowest_state"] > hybrid["abar_mean_state"]
    assert 0 < hybrid["gate_attention_share"] < 1 and hybrid["delta_mean"] > 0
    assert {"loss_bc", "loss_critic", "loss_q"} <= hybrid.keys()
    assert not any(key.startswith(("abar_mean/", "effective_memory")) or key == "abar_mean" for key in hybrid)
    mamba = make_agent(tiny_config(backbone="mamba"), data).eval().validation_metrics(batch)
    assert "delta_mean/layer1" in mamba and "gate_attention_share" not in mamba
    attention = make_agent(tiny_config(backbone="attention"), data).eval().validation_metrics(batch)
    assert not any(key.startswith(("delta", "abar", "memory", "gate")) for key in attention)


def test_mamba_statistics_match_a_hand_computation():
    """Δ set per channel through dt_proj's bias (zero weight: Δ = softplus(bias) on every token) and A per channel
    and state dim through A_log; each metric recomputed here from those numbers, per layer and averaged over
    layers. In layer 1 the slowest state is not state 0 and differs between channels (as after training)."""
    data = random_walks(length=15)
    cfg = tiny_config(backbone="mamba", context_len=8, d_state=3, dropout=0.0)
    agent = make_agent(cfg, data).eval()
    d_inner = agent.model.backbone.blocks[0].mamba.D.shape[0]
    deltas = [np.full(d_inner, 0.38), np.linspace(0.2, 1.5, d_inner)]   # (d_inner,) per layer
    rates = [np.tile([0.22, 1.0, 3.0], (d_inner, 1)),                   # |A| (d_inner, N): state 0 slowest
             np.where(np.arange(d_inner)[:, None] % 2 == 0, [4.0, 0.5, 2.0], [2.0, 4.0, 0.3])]  # state 1 or 2
    with torch.no_grad():
        for block, delta, rate in zip(agent.model.backbone.blocks, deltas, rates, strict=True):
            delta_t = torch.as_tensor(delta, dtype=torch.float32)
            block.mamba.dt_proj.weight.zero_()
            block.mamba.dt_proj.bias.copy_(delta_t + torch.log(-torch.expm1(-delta_t)))  # inverse softplus
            block.mamba.A_log.copy_(torch.log(torch.as_tensor(rate, dtype=torch.float32)))
    batch = agent.make_sampler(data, seed=2).sample(64)
    # a tenth or more of the steps are padding, where Δ = 0 (Ā = 1): counting them would move every mean by
    # far more than the tolerance below
    assert batch["mask"].float().mean() < 0.9
    metrics = agent.validation_metrics(batch)

    def expected(delta_mean, abar_mean_state, abar_slowest_state):
        abar = {"mean_state": abar_mean_state, "slowest_state": abar_slowest_state,
                "exp_mean_delta": np.exp(-delta_mean)}
        return {"delta_mean": delta_mean, **{f"abar_{key}": value for key, value in abar.items()},
                **{f"memory_tokens_{key}": 1 / (1 - value) for key, value in abar.items()},
                **{f"memory_steps_{key}": 1 / (1 - value) / 3 for key, value in abar.items()}}

    layers = [expected(delta.mean(), np.exp(-delta[:, None] * rate).mean(), np.exp(-delta * rate.min(1)).mean())
              for delta, rate in zip(deltas, rates, strict=True)]
    averaged = expected(*(np.mean([layer[key] for layer in layers])
                          for key in ("delta_mean", "abar_mean_state", "abar_slowest_state")))
    assert averaged.keys() == set(MAMBA_METRICS)
    for key, value in averaged.items():
        for i, layer in enumerate(layers):
            assert metrics[f"{key}/layer{i}"] == pytest.approx(layer[key], rel=1e-5), (key, i)
        assert metrics[key] == pytest.approx(value, rel=1e-5), key
    # layer 0 replays the card's play pair: Δ = 0.38 with |A_0| = 0.22 gives Ā = 0.92 on the slowest state; in
    # layer 1 state 0 is the fastest of every even channel, so reading state 0 would give a different number
    assert metrics["abar_slowest_state/layer0"] == pytest.approx(0.92, abs=0.005)
    state0 = np.exp(-deltas[1] * rates[1][:, 0]).mean()
    assert abs(metrics["abar_slowest_state/layer1"] - state0) > 0.1


# --- hindsight goals -----------------------------------------------------------------------------------------------
def test_goal_mix_follows_conditioning_and_explicit_values_win():
    rtg = QHyerConfig(conditioning="rtg").for_family("ogbench_play")
    data = random_walks()
    dt_goals = DTAgent(DTConfig().for_family("maze2d"), DataInfo.from_dataset(SPEC, data, "full")).make_sampler(
        data, seed=0).goals
    assert rtg.goal_sampling() == dt_goals                           # DT's relabelling in this harness
    assert dataclasses.asdict(rtg)["p_random"] == dt_goals.p_random > 0  # recorded in method_config.json
    for conditioning in ("nf", "crl", "cvae", "none"):
        cfg = QHyerConfig(conditioning=conditioning).for_family("ogbench_play")
        assert cfg.p_random == 0 and cfg.p_current == 0              # futures only: the critic models reaching them
        assert cfg.p_future_geometric + cfg.p_future_uniform == 1
    explicit = QHyerConfig(conditioning="rtg", p_random=0.0, p_future_uniform=0.5).for_family("ogbench_play")
    assert (explicit.p_random, explicit.p_future_uniform, explicit.p_future_geometric) == (0.0, 0.5, 0.5)
    with pytest.raises(ConfigError, match="sum to 1"):               # an explicit value that breaks the mix
        QHyerConfig(conditioning="rtg", p_random=0.5).for_family("ogbench_play")


@pytest.mark.parametrize("conditioning", ["rtg", "nf"])
def test_rtg_token_takes_both_values_in_the_goal_mix_proportion(conditioning):
    """Expected share of real steps whose return-to-go is 0, derived from the sampler's definition (RTG_k = 1 iff
    the goal row lies after k in k's episode), for a window ending at t (uniform over the N rows):
      future goal (1 − p_random): g > t, or g = t only at an episode's last row → one zero (step t) iff t is last;
      random goal (p_random): g uniform over all N rows → the real steps k with k < g, g in the episode, are 1.
    The observed share is a ratio of sums over n windows; the tolerance is 4 standard errors (delta method)."""
    data = random_walks(episodes=20, length=100)
    cfg = tiny_config(conditioning=conditioning, context_len=6)
    sampler = make_agent(cfg, data).make_sampler(data, seed=3)
    k, n_rows, p_random = cfg.context_len, len(data), cfg.p_random
    start, last, t = data.row_start, data.row_last, np.arange(n_rows)
    real = np.minimum(k, t - start + 1)                                           # real steps of the window at t
    first_real = t - real + 1
    # Σ over goals g in t's episode of #{real k < g}
    reached = np.array([np.clip(np.arange(start[i], last[i] + 1) - first_real[i], 0, real[i]).sum()
                        for i in t])
    zeros = (1 - p_random) * (t == last) + p_random * (real - reached / n_rows)
    expected = zeros.mean() / real.mean()

    batches = [sampler.sample(1000) for _ in range(20)]
    zero_counts = np.concatenate([((b["returns_to_go"] == 0) & b["mask"]).sum(1).numpy() for b in batches])
    real_counts = np.concatenate([b["mask"].sum(1).numpy() for b in batches])
    share = zero_counts.sum() / real_counts.sum()
    standard_error = np.std(zero_counts - share * real_counts) / (np.sqrt(len(real_counts)) * real_counts.mean())
    assert abs(share - expected) < 4 * standard_error
    # the documented proportion: within half a percentage point of p_random on 100-step episodes
    assert abs(expected - p_random) < 0.005
    if conditioning == "rtg":
        assert {0.0, 1.0} == set(torch.cat([b["returns_to_go"][b["mask"]] for b in batches]).unique().tolist())


# --- learning ------------------------------------------------------------------------------------------------------
DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)


def straight_lines(episodes: int = 64, length: int = 20, seed: int = 0) -> EpisodeDataset:
    """Each episode moves 0.1 per step in one fixed direction (its action) from a random start, so the goals
    reachable after (s, a) lie on the ray from s along a: the true Q ranks a = direction to g first."""
    rng = np.random.default_rng(seed)
    starts = rng.uniform(-1, 1, (episodes, 1, 2))
    actions = DIRECTIONS[rng.integers(0, 4, episodes)][:, None].repeat(length, 1)
    obs = starts + 0.1 * np.arange(length)[None, :, None] * actions
    return EpisodeDataset("lines", obs.reshape(-1, 2), actions.reshape(-1, 2),
                          np.arange(length, episodes * length + 1, length), np.array([0, 1]))


def test_learns_toy_goal_reaching():
    data = straight_lines()
    cfg = dataclasses.replace(tiny_config(), batch_size=64, context_len=3, n_layers=1, embed_dim=32,
                              backbone="attention", critic_hidden=64, lr=1e-3, critic_lr=3e-3, dropout=0.0)
    agent = make_agent(cfg, data)
    sampler = agent.make_sampler(data, seed=0)
    agent.train()
    history = [agent.update(sampler.sample(cfg.batch_size), i) for i in range(300)]
    for key in ("loss_critic", "loss_bc"):
        assert np.mean([m[key] for m in history[-20:]]) < np.mean([m[key] for m in history[:20]]) - 0.5, key
    agent.eval()
    rng = np.random.default_rng(1)
    s = torch.as_tensor(rng.uniform(-0.5, 0.5, (32, 2)), dtype=torch.float32)
    toward = torch.as_tensor(DIRECTIONS[rng.integers(0, 4, 32)])
    g = s + 0.5 * toward  # 5 steps ahead along `toward`
    with torch.no_grad():
        q = lambda a: agent.critic.q(agent.normalize_obs(s), a, agent.normalize_goal(g))  # noqa: E731
        assert (q(toward) > q(-toward)).float().mean() > 0.9  # reaching beats leaving
        assert (q(toward) > q(toward.flip(-1))).float().mean() > 0.9  # ... and a perpendicular move
    policy = agent.policy()  # two-stage inference from a fresh start: Q̂(s, g), then an action toward g
    policy.reset(len(s))
    actions = policy.act(StepInput(observations=s.numpy(), goals=g.numpy(), t=0,
                                   history_observations=s[:, None].numpy(),
                                   history_actions=np.zeros((len(s), 0, 2), np.float32),
                                   history_rewards=np.zeros((len(s), 0), np.float32), active=np.ones(len(s), bool)))
    cosine = (actions * toward.numpy()).sum(1) / np.linalg.norm(actions, axis=1)
    assert cosine.mean() > 0.9
