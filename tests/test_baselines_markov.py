"""GCIQL, HIQL and GCBC (baselines/{gciql,hiql,gcbc,markov}.py) on tiny synthetic episode datasets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from baselines.markov import expectile_loss
from qhyer.agent import DataInfo
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.methods import method_classes
from qhyer.rollout.policy import Policy, StepInput

SPEC = DatasetSpec(name="synthetic-chain", family="ogbench", env_id="synthetic", kind="play", obs_dim=3,
                   action_dim=2, goal_dims=(0, 1), eval_max_steps=20)
SMALL = {"gcbc": {"actor_hidden_dims": (32, 32)},
         "gciql": {"actor_hidden_dims": (32, 32), "value_hidden_dims": (32, 32)},
         "hiql": {"actor_hidden_dims": (32, 32), "value_hidden_dims": (32, 32)}}



def chain_dataset(lengths=(12, 9, 15), seed=0) -> EpisodeDataset:
    """Observation = (global row index, step within the episode, noise), so batches reveal their source rows."""
    rng = np.random.default_rng(seed)
    rows = sum(lengths)
    steps = np.concatenate([np.arange(n) for n in lengths])
    obs = np.stack([np.arange(rows), steps, rng.normal(size=rows)], axis=1)
    return EpisodeDataset(name=SPEC.name, observations=obs, actions=rng.uniform(-1, 1, (rows, 2)),
                          episode_ends=np.cumsum(lengths), goal_dims=np.array(SPEC.goal_dims))


def make_agent(method: str, ds: EpisodeDataset, goal_rep: str = "full", **overrides):
    config_cls, agent_cls = method_classes(method)
    cfg = config_cls(batch_size=32, goal_rep=goal_rep, **{**SMALL[method], **overrides}).for_family("ogbench_play")
    return agent_cls(cfg, DataInfo.from_dataset(SPEC, ds, goal_rep))


@pytest.mark.parametrize(("method", "goal_rep"),
                         [("gciql", "full"), ("gciql", "task"), ("hiql", "full"), ("gcbc", "full"), ("gcbc", "task")])
def test_trains_and_acts(method, goal_rep):
    torch.manual_seed(0)
    ds = chain_dataset()
    agent = make_agent(method, ds, goal_rep)
    assert agent.sampler_kind == "transition"
    sampler = agent.make_sampler(ds, seed=0)
    for step in range(3):
        metrics = agent.update(sampler.sample(agent.cfg.batch_size), step)
        assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics
    val = agent.validation_metrics(sampler.sample(16))
    assert val.keys() == metrics.keys() and all(np.isfinite(v) for v in val.values())

    policy = agent.policy()
    assert isinstance(policy, Policy) and policy.goal_rep == goal_rep
    b, goal_dim = 4, 2 if goal_rep == "task" else 3
    obs = ds.observations[:b]
    policy.reset(b)
    actions = policy.act(StepInput(observations=obs, goals=np.full((b, goal_dim), 50.0, np.float32), t=0,
                                   history_observations=obs[:, None], history_actions=np.zeros((b, 0, 2)),
                                   history_rewards=np.zeros((b, 0)), active=np.ones(b, bool)))
    assert actions.shape == (b, 2) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0)


def test_family_defaults_follow_ogbench_hyperparameters():
    gciql, _ = method_classes("gciql")
    hiql, _ = method_classes("hiql")
    expected = {"ogbench_play": (1.0, 10), "ogbench_noisy": (0.03, 10), "maze2d": (0.003, 25), "antmaze": (0.3, 25)}
    for family, (alpha, subgoal_steps) in expected.items():
        assert gciql().for_family(family).alpha == alpha
        assert hiql().for_family(family).subgoal_steps == subgoal_steps


OGBENCH_GOALS = {  # impls/agents/{gciql,hiql,gcbc}.py get_config: value_*, then actor_* (p_cur, p_traj, p_random, geom)
    "gciql": ((0.2, 0.5, 0.3, True), (0.0, 1.0, 0.0, False)),
    "hiql": ((0.2, 0.5, 0.3, True), (0.0, 1.0, 0.0, False)),
    "gcbc": ((0.0, 1.0, 0.0, False), (0.0, 1.0, 0.0, False)),
}


@pytest.mark.parametrize("method", sorted(OGBENCH_GOALS))
def test_goal_sampling_is_recorded_config_and_builds_the_sampler(method):
    config_cls, _ = method_classes(method)
    recorded = dataclasses.asdict(config_cls())  # what method_config.json holds
    for kind, expected in zip(("value", "actor"), OGBENCH_GOALS[method], strict=True):
        names = [f"{kind}_p_curgoal", f"{kind}_p_trajgoal", f"{kind}_p_randomgoal", f"{kind}_geom_sample"]
        assert tuple(recorded[name] for name in names) == expected

    ds = chain_dataset()
    sampler = make_agent(method, ds, actor_p_trajgoal=0.0, actor_p_randomgoal=1.0, actor_geom_sample=True,
                         value_p_curgoal=1.0, value_p_trajgoal=0.0, value_p_randomgoal=0.0).make_sampler(ds, 0)
    assert sampler.actor_goals.probabilities == (0.0, 0.0, 0.0, 1.0)
    assert sampler.value_goals.probabilities == (1.0, 0.0, 0.0, 0.0)
    batch = sampler.sample(64)
    assert torch.equal(batch["value_goals"], batch["observations"]) and (batch["rewards"] == 0).all()
    geometric = make_agent(method, ds, discount=0.9, actor_geom_sample=True).make_sampler(ds, 0).actor_goals
    assert geometric.probabilities == (0.0, 1.0, 0.0, 0.0) and geometric.discount == 0.9


def test_bad_goal_probabilities_are_config_errors():
    gciql, _ = method_classes("gciql")
    with pytest.raises(ConfigError, match="sum to 1"):
        gciql(value_p_randomgoal=0.5)


def test_hiql_rejects_task_goals():
    with pytest.raises(ConfigError, match="goal_rep='full'"):
        make_agent("hiql", chain_dataset(), goal_rep="task")


def test_expectile_is_asymmetric():
    diff = torch.tensor([2.0, -2.0])
    assert torch.allclose(expectile_loss(diff, diff, 0.9), torch.tensor([0.9 * 4, 0.1 * 4]))
    # HIQL: the weight follows the sign of `adv`, the size follows `diff`.
    assert torch.allclose(expectile_loss(-diff, diff, 0.7), torch.tensor([0.3 * 4, 0.7 * 4]))


@pytest.mark.parametrize("method", ["gciql", "hiql"])
def test_target_is_polyak_average_of_pre_update_weights(method):
    torch.manual_seed(0)
    ds = chain_dataset()
    agent = make_agent(method, ds)
    ((target, online),) = agent.target_pairs()
    online_before = [p.detach().clone() for p in online.parameters()]
    target_before = [p.detach().clone() for p in target.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(online_before, target_before, strict=True))  # same init
    agent.update(agent.make_sampler(ds, seed=1).sample(32), step=0)
    tau = agent.cfg.tau
    assert not any(p.requires_grad for p in target.parameters())
    for o, t, new_t in zip(online_before, target_before, target.parameters(), strict=True):
        assert torch.allclose(new_t, tau * o + (1 - tau) * t, atol=1e-7)
    assert any(not torch.equal(o, p) for o, p in zip(online_before, online.parameters(), strict=True))


def test_gciql_actor_loss_does_not_train_the_critic():
    ds = chain_dataset()
    agent = make_agent("gciql", ds)
    agent.losses(agent.make_sampler(ds, seed=0).sample(32))["actor_loss"].backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())


def test_hiql_subgoals_are_capped_at_episode_ends():
    ds = chain_dataset(lengths=(12, 9, 15))
    agent = make_agent("hiql", ds)
    k = agent.cfg.subgoal_steps
    assert k == 10  # manipulation datasets (OGBench impls/hyperparameters.sh)
    batch = agent.make_sampler(ds, seed=0).sample(512)
    rows = batch["observations"][:, 0].long().numpy()
    # Like OGBench's compact dataset (`final_state_idxs`), trajectory goals stop at the last row with an action.
    last = ds.row_last[rows] - 1
    low, high_goal = batch["low_goals"][:, 0].long().numpy(), batch["high_goals"][:, 0].long().numpy()
    np.testing.assert_array_equal(low, np.minimum(rows + k, last))
    assert np.any(rows + k > last)  # the batch really reaches episode ends
    assert np.all((high_goal >= np.minimum(rows + 1, last)) & (high_goal <= last))
    np.testing.assert_array_equal(batch["high_targets"][:, 0].long().numpy(), np.minimum(rows + k, high_goal))


def test_hiql_low_actor_is_conditioned_on_the_subgoal_representation():
    torch.manual_seed(0)
    ds = chain_dataset()
    agent = make_agent("hiql", ds)
    seen = []
    agent.low_actor.net[0].register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    batch = agent.make_sampler(ds, seed=0).sample(32)
    agent.losses(batch)
    obs_dim, rep_dim = ds.obs_dim, agent.cfg.rep_dim
    (inputs,) = seen
    assert inputs.shape == (32, obs_dim + rep_dim)
    with torch.no_grad():
        expected = agent.phi(batch["observations"], batch["low_goals"])
    torch.testing.assert_close(inputs[:, obs_dim:], expected)
    torch.testing.assert_close(expected.norm(dim=-1), torch.full((32,), rep_dim ** 0.5))
    # Acting: the low level gets the high level's prediction projected onto the same sphere.
    with torch.no_grad():
        agent.act(batch["observations"], batch["actor_goals"])
        predicted = agent.high_actor(batch["observations"], batch["actor_goals"])
    torch.testing.assert_close(seen[-1][:, obs_dim:], predicted / predicted.norm(dim=-1, keepdim=True) * rep_dim ** 0.5)


@pytest.mark.parametrize("method", ["gciql", "hiql"])
def test_value_ranks_states_nearer_the_goal_higher(method):
    """On a 1-D chain walked left to right, V(s, g_end) must grow as s approaches the end."""
    torch.manual_seed(0)
    n, episodes = 16, 8
    x = np.tile(np.linspace(0.0, 1.0, n), episodes)
    obs = np.stack([x, np.zeros_like(x)], axis=1)
    ds = EpisodeDataset(name=SPEC.name, observations=obs, actions=np.ones((len(x), 2)),
                        episode_ends=np.arange(1, episodes + 1) * n, goal_dims=np.array([0]))
    # A faster target (τ 0.05) and LR let values propagate along the chain within a few hundred steps.
    agent = make_agent(method, ds, value_hidden_dims=(64, 64), lr=1e-3, tau=0.05)
    sampler = agent.make_sampler(ds, seed=0)
    for step in range(300):
        agent.update(sampler.sample(128), step)
    states = torch.as_tensor(obs[: n - 1], dtype=torch.float32)
    goal = torch.as_tensor(obs[n - 1], dtype=torch.float32).expand_as(states)
    with torch.no_grad():
        values = (agent.value(states, goal)[0] if method == "gciql" else agent.v(agent.value, states, goal).mean(0))
    rank_corr = np.corrcoef(np.argsort(np.argsort(values.numpy())), np.arange(n - 1))[0, 1]
    assert rank_corr > 0.9, values
