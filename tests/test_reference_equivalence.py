"""GCIQL, HIQL and GCBC against OGBench's JAX agents (seohongpark/ogbench `impls/agents/{gciql,hiql,gcbc}.py`).

The fixtures in tests/fixtures/reference/ come from `tools/reference_fixtures_ogbench.py` (commit and library
versions inside each file). Each holds OGBench's parameters and one batch (float32 numbers), and what OGBench's code
computes from them in float64: every loss and info entry, the gradients and the parameters after one Adam + Polyak
update. Here the same parameters go into our agents, which take the same batch through `losses` and `update`:
- in float64 everything must agree to float64 rounding (TOLERANCE[torch.float64]): the same computation;
- in float32, the dtype we train in, to float32 rounding (TOLERANCE[torch.float32]): relative 1e-5, and absolute
  1e-5 times the largest entry of the compared array, since a gradient entry is a sum of terms as large as that.

Intended differences, named where they are handled:
- batch keys: HGCDataset's `low_actor_goals`, `high_actor_goals`, `high_actor_targets` are our `low_goals`,
  `high_goals`, `high_targets` (BATCH_KEYS);
- logged metrics: entries without a counterpart on the other side are listed with the reason (REFERENCE_ONLY,
  OURS_ONLY); the losses themselves all have one;
- no random draw enters any of these losses (OGBench's `const_std=True` actors use the distribution's mode in
  DDPG+BC), so there is no noise to align;
- targets: OGBench's target networks receive zero gradients and an Adam step of zero; ours are not optimised
  at all. Both then take the same Polyak average of the pre-update weights;
- HIQL's length normalisation: ours floors ‖φ‖ at 1e-6 (baselines/hiql.py `length_normalize`), which no input
  here reaches.

Every branch the comparison protects is taken by the fixture's batch (`branch_counts`, checked by
`test_fixture_reaches_every_branch`): both signs of every expectile advantage, each ensemble member as the minimum
(for HIQL's value, where the minimum sets only the advantage's sign, in a row where the other head's sign differs),
DDPG+BC's action clip on both sides and inside, and HIQL's AWR weights on both sides of their cap of 100 (the
fixture raises HIQL's temperatures to 10 for that, see tools/reference_fixtures_ogbench.py FIXTURE_OVERRIDES).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from qhyer.agent import DataInfo
from qhyer.data.registry import DatasetSpec
from qhyer.methods import method_classes

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
TOLERANCE = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5)}  # (rtol, atol per unit of max |reference|)

BATCH_KEYS = {"low_actor_goals": "low_goals", "high_actor_goals": "high_goals", "high_actor_targets": "high_targets"}

# Our metric → OGBench's info entry with the same definition ("loss" is the total that `update` minimises).
METRICS = {
    "gciql": {"loss": "loss", "value_loss": "value/value_loss", "critic_loss": "critic/critic_loss",
              "actor_loss": "actor/actor_loss", "q_loss": "actor/q_loss", "bc_loss": "actor/bc_loss",
              "v_mean": "value/v_mean", "q_mean": "critic/q_mean", "bc_log_prob": "actor/bc_log_prob",
              "mse": "actor/mse"},
    "hiql": {"loss": "loss", "value_loss": "value/value_loss", "low_actor_loss": "low_actor/actor_loss",
             "high_actor_loss": "high_actor/actor_loss", "v_mean": "value/v_mean", "low_mse": "low_actor/mse",
             "high_mse": "high_actor/mse"},
    "gcbc": {"loss": "actor/actor_loss", "mse": "actor/mse"},
}
REFERENCE_ONLY = {  # OGBench info entries we do not log, and why
    "actor/std": "constant 1 (const_std actors)",
    "value/v_max": "batch extremes are not logged", "value/v_min": "batch extremes are not logged",
    "critic/q_max": "batch extremes are not logged", "critic/q_min": "batch extremes are not logged",
    "actor/q_mean": "Q of the policy's action; enters q_loss", "actor/q_abs_mean": "the normaliser inside q_loss",
    "actor/bc_log_prob": "GCBC logs it as −loss", "low_actor/adv": "we log the AWR weight instead",
    "high_actor/adv": "we log the AWR weight instead", "low_actor/bc_log_prob": "low_actor_loss without the weights",
    "high_actor/bc_log_prob": "high_actor_loss without the weights", "low_actor/std": "constant 1 (const_std actors)",
    "high_actor/std": "constant 1 (const_std actors)", "loss": "GCBC's total is its actor loss",
}
OURS_ONLY = {"low_adv_weight": "mean AWR weight", "high_adv_weight": "mean AWR weight"}

# Config fields whose meaning and name are OGBench's; our defaults must equal its get_config() defaults.
SHARED_FIELDS = ("lr", "batch_size", "actor_hidden_dims", "discount", "value_p_curgoal", "value_p_trajgoal",
                 "value_p_randomgoal", "value_geom_sample", "actor_p_curgoal", "actor_p_trajgoal",
                 "actor_p_randomgoal", "actor_geom_sample", "value_hidden_dims", "layer_norm", "tau", "expectile",
                 "alpha", "low_alpha", "high_alpha", "rep_dim", "subgoal_steps")


def load(method: str) -> dict:
    return json.loads((FIXTURES / f"{method}.json").read_text())


def modules(method: str, agent) -> dict[str, list[nn.Sequential]]:
    """OGBench module name → our MLPs in the fixture's member order."""
    if method == "gciql":
        return {"value": list(agent.value.members), "critic": list(agent.critic.members),
                "target_critic": list(agent.target_critic.members), "actor": [agent.actor.net]}
    if method == "hiql":
        return {"goal_rep": [agent.goal_rep], "value": list(agent.value.members),
                "target_value": list(agent.target_value.members), "low_actor": [agent.low_actor.net],
                "high_actor": [agent.high_actor.net]}
    return {"actor": [agent.actor.net]}


def layers(net: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """('dense' | 'layer_norm', module) in order of the fixture's lists."""
    dense = [("dense", m) for m in net if isinstance(m, nn.Linear)]
    norms = [("layer_norm", m) for m in net if isinstance(m, nn.LayerNorm)]
    return dense + norms


def pairs(mlp: dict, net: nn.Sequential, what: str):
    """(fixture array, our tensor) for every weight of one MLP. `what`: 'input' (initial parameters, float32
    numbers), 'param' (updated parameters) or 'grad'. The fixture's dense kernels are (in, out) as flax stores
    them, torch's Linear weights (out, in)."""
    ours = layers(net)
    assert [kind for kind, _ in ours] == ["dense"] * len(mlp["dense"]) + ["layer_norm"] * len(mlp["layer_norm"])
    counters = {"dense": 0, "layer_norm": 0}
    for kind, module in ours:
        first, second = mlp[kind][counters[kind]]
        counters[kind] += 1
        for ref, param, transpose in ((first, module.weight, kind == "dense"), (second, module.bias, False)):
            ref = np.asarray(ref, np.float32 if what == "input" else np.float64)
            tensor = param.grad if what == "grad" else param
            yield (ref.T if transpose else ref), tensor


def build(method: str, fixture: dict, dtype: torch.dtype):
    """Our agent in `dtype` with OGBench's config values (defaults + the fixture's overrides) and parameters."""
    config_cls, agent_cls = method_classes(method)
    reference = {**fixture["defaults"], **fixture["overrides"]}
    fields = {f.name for f in dataclasses.fields(config_cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in reference.items()
              if k in fields and k in SHARED_FIELDS}
    cfg = config_cls(**values)
    sizes = fixture["sizes"]
    spec = DatasetSpec(name="reference-fixture", family="ogbench", env_id="none", kind="play",
                       obs_dim=sizes["obs_dim"], action_dim=sizes["action_dim"],
                       goal_dims=tuple(range(sizes["goal_dim"])), eval_max_steps=1)
    zeros, ones = np.zeros(sizes["obs_dim"], np.float32), np.ones(sizes["obs_dim"], np.float32)
    info = DataInfo(spec=spec, obs_dim=sizes["obs_dim"], action_dim=sizes["action_dim"],
                    goal_dim=sizes["goal_dim"], obs_mean=zeros, obs_std=ones, goal_mean=zeros, goal_std=ones,
                    max_episode_length=1)
    agent = agent_cls(cfg, info).to(dtype)  # converts in place: the optimiser keeps the same parameters
    with torch.no_grad():
        for name, nets in modules(method, agent).items():
            assert len(nets) == len(fixture["params"][name]), name
            for mlp, net in zip(fixture["params"][name], nets, strict=True):
                for ref, param in pairs(mlp, net, "input"):
                    assert param.shape == ref.shape
                    param.copy_(torch.from_numpy(ref))
    return agent


def our_batch(fixture: dict, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {BATCH_KEYS.get(k, k): torch.tensor(np.asarray(v, np.float32)).to(dtype)
            for k, v in fixture["batch"].items()}


def branch_counts(method: str, agent, batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """How many rows (or action entries) of the batch take each side of every cap, clip, sign and minimum in the
    losses, from our agent before the update (equal to OGBench's to float64 rounding, as the test below shows)."""
    def sides(name: str, condition: torch.Tensor) -> dict[str, int]:
        return {f"{name}": int(condition.sum()), f"not {name}": int((~condition).sum())}

    obs, next_obs, counts = batch["observations"], batch["next_observations"], {}
    with torch.no_grad():
        if method == "gciql":
            q_target = agent.target_critic(obs, batch["value_goals"], batch["actions"])           # (2, B)
            adv = q_target.min(0).values - agent.value(obs, batch["value_goals"])[0]
            counts |= sides("value advantage < 0", adv < 0)
            counts |= sides("target Q1 is the minimum", q_target.argmin(0) == 0)
            mean = agent.actor(obs, batch["actor_goals"])
            counts |= {"action mean > 1": int((mean > 1).sum()), "action mean < -1": int((mean < -1).sum()),
                       "action mean in [-1, 1]": int((mean.abs() <= 1).sum())}
            q_pi = agent.critic(obs, batch["actor_goals"], mean.clamp(-1.0, 1.0))
            counts |= sides("Q1 of the policy's action is the minimum", q_pi.argmin(0) == 0)
        elif method == "hiql":
            cfg = agent.cfg
            next_v = agent.v(agent.target_value, next_obs, batch["value_goals"])                    # (2, B)
            q = batch["rewards"] + cfg.discount * batch["masks"] * next_v                            # (2, B)
            adv_of_head = q - agent.v(agent.target_value, obs, batch["value_goals"]).mean(0)          # (2, B)
            adv = adv_of_head.min(0).values
            counts |= sides("value advantage < 0", adv < 0)
            # The minimum over heads enters only the advantage's sign, so a row tests it only where the two heads'
            # advantages differ in sign.
            decides = (adv_of_head[0] < 0) != (adv_of_head[1] < 0)
            for head in (0, 1):
                counts[f"next target V{head + 1} is the minimum and sets the sign"] = int(
                    (decides & (next_v.argmin(0) == head)).sum())
            for level, ahead, goals, alpha in (("low", next_obs, batch["low_goals"], cfg.low_alpha),
                                               ("high", batch["high_targets"], batch["high_goals"], cfg.high_alpha)):
                adv = agent.v(agent.value, ahead, goals).mean(0) - agent.v(agent.value, obs, goals).mean(0)
                counts |= sides(f"{level} AWR weight above its cap of 100", torch.exp(alpha * adv) > 100.0)
    return counts


@pytest.mark.parametrize("method", ["gciql", "hiql"])
def test_fixture_reaches_every_branch(method):
    """GCBC's loss has no branch; GCIQL's and HIQL's batches must take every side (see `branch_counts`)."""
    fixture = load(method)
    counts = branch_counts(method, build(method, fixture, torch.float64), our_batch(fixture, torch.float64))
    assert counts and all(counts.values()), counts


@pytest.mark.parametrize("method", ["gciql", "hiql", "gcbc"])
def test_float32_gradients_are_not_rounding_noise(method):
    """Adam's first step moves a weight by lr·g/(|g| + ε) ≈ ±lr·sign(g) however small g is, so an entry whose float32
    gradient were rounding noise (its exact value 0 or below float32's error) would move by a CPU-dependent ±lr
    (AVX2 and AVX-512 kernels round differently) and the float32 comparison of the updated weights would test
    rounding. Here every float32 gradient entry is within half its exact (float64, OGBench's) value of it — the
    largest error seen is ~10%, on GCIQL critic entries ~3e-7 of their layer's largest — so its sign, and Adam's
    step, are the computation's on any CPU; and exact zeros (outputs that take no part) stay exactly zero."""
    fixture = load(method)
    agent = build(method, fixture, torch.float32)
    agent.update(our_batch(fixture, torch.float32), step=0)
    for name, members in modules(method, agent).items():
        for grad_mlp, net in zip(fixture["grads"][name], members, strict=True):
            for ref, grad in pairs(grad_mlp, net, "grad"):
                if grad is None:  # a target network
                    continue
                ours = grad.double().numpy()
                assert not ours[ref == 0].any(), f"{name}: a gradient that is exactly 0 is not 0 in float32"
                nonzero = ref != 0
                assert (np.abs(ours[nonzero] - ref[nonzero]) <= 0.5 * np.abs(ref[nonzero])).all(), name


def close(actual, expected, dtype: torch.dtype, what: str) -> None:
    actual = actual.detach().double().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = np.asarray(expected, np.float64)
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * max(1.0, np.abs(expected).max()),
                               err_msg=what)


@pytest.mark.parametrize("method", ["gciql", "hiql", "gcbc"])
def test_our_defaults_are_ogbench_defaults(method):
    fixture = load(method)
    config_cls, _ = method_classes(method)
    ours = dataclasses.asdict(config_cls())
    shared = [k for k in SHARED_FIELDS if k in ours and k in fixture["defaults"]]
    assert {"lr", "discount", "actor_p_trajgoal"} <= set(shared)
    for key in shared:
        if ours[key] is None:  # per dataset family (e.g. GCIQL's alpha, HIQL's subgoal_steps); see FAMILY_DEFAULTS
            continue
        expected = fixture["defaults"][key]
        assert ours[key] == (tuple(expected) if isinstance(expected, list) else expected), key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("method", ["gciql", "hiql", "gcbc"])
def test_losses_gradients_and_update_match_ogbench(method, dtype):
    fixture = load(method)
    agent = build(method, fixture, dtype)
    batch = our_batch(fixture, dtype)
    with torch.no_grad():
        losses = agent.losses(batch)  # `update` returns the same values, rounded to float32 for logging
    agent.update(batch, step=0)

    # Every loss and info entry.
    mapping = METRICS[method]
    assert set(losses) == set(mapping) | (set(losses) & set(OURS_ONLY)), set(losses) - set(mapping)
    unmatched = set(fixture["losses"]) - set(mapping.values())
    assert unmatched <= set(REFERENCE_ONLY), unmatched
    for ours, theirs in mapping.items():
        close(losses[ours], fixture["losses"][theirs], dtype, f"{method} {ours} vs OGBench {theirs}")

    # Gradients (left in .grad by `update`) and the parameters after Adam and the Polyak average.
    nets = modules(method, agent)
    assert set(nets) == set(fixture["grads"]) == set(fixture["grad_norms"])
    for name, members in nets.items():
        squares = 0.0
        for grad_mlp, after_mlp, net in zip(fixture["grads"][name], fixture["params_after"][name], members,
                                            strict=True):
            for ref, grad in pairs(grad_mlp, net, "grad"):
                if grad is None:  # a target network: OGBench's gradient there is exactly zero
                    assert not ref.any(), name
                    continue
                close(grad, ref, dtype, f"{method} gradient of {name}")
                squares += float(grad.double().pow(2).sum())
            for ref, param in pairs(after_mlp, net, "param"):
                close(param, ref, dtype, f"{method} {name} after one update")
        close(squares ** 0.5, fixture["grad_norms"][name], dtype, f"{method} gradient norm of {name}")
