"""IQL against the authors' JAX code (ikostrikov/implicit_q_learning `learner.py`, `critic.py`, `actor.py`).

The fixture tests/fixtures/reference/iql.json comes from `tools/reference_fixtures_iql.py` (commit and library versions
inside). It holds the reference's parameters and one batch (float32 numbers) and what the reference computes from them
in float64 in one `update`: every info entry, each network's gradient, the parameters after the update, and the
actor's learning-rate schedule. The same parameters go into our agent (baselines/iql.py), which takes the same batch
through `update`; tolerances as in test_reference_equivalence.py (float64: the same computation; float32: rounding).

Intended differences: the reference logs the advantages as an array (`adv`), we log their mean (`adv_mean`); the
reference's target critic gets no optimiser, as ours.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_reference_equivalence import close
from torch import nn

from baselines.iql import IQLAgent, IQLConfig
from qhyer.agent import DataInfo
from qhyer.data.registry import DatasetSpec

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "iql.json"
# Our metric → the reference's info entry (a callable for the array it logs).
METRICS = {"value_loss": "value_loss", "v_mean": "v", "actor_loss": "actor_loss", "critic_loss": "critic_loss",
           "q1_mean": "q1", "q2_mean": "q2", "adv_mean": lambda info: float(np.mean(info["adv"]))}
OURS_ONLY = {"adv_weight": "mean AWR weight", "adv_capped": "share of AWR weights at the cap"}
SHARED_FIELDS = ("actor_lr", "value_lr", "critic_lr", "hidden_dims", "discount", "expectile", "temperature", "tau")


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def modules(agent: IQLAgent) -> dict[str, list[nn.Sequential]]:
    return {"actor": [agent.actor.net], "critic": list(agent.critic.members), "value": [agent.value.net],
            "target_critic": list(agent.target_critic.members)}


def pairs(mlp: dict, net: nn.Sequential):
    """(fixture (W, b) as numpy, our (weight, bias)) per dense layer; fixture kernels are (in, out)."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == len(mlp["dense"])
    for (kernel, bias), layer in zip(mlp["dense"], linears, strict=True):
        yield np.asarray(kernel).T, layer.weight
        yield np.asarray(bias), layer.bias


def build(fixture: dict, dtype: torch.dtype) -> IQLAgent:
    sizes = fixture["sizes"]
    cfg = IQLConfig(hidden_dims=tuple(fixture["overrides"]["hidden_dims"]), actor_lr_decay_steps=sizes["max_steps"],
                    reward_shift=-1.0)
    spec = DatasetSpec(name="reference-fixture", family="antmaze", env_id="none", kind="play",
                       obs_dim=sizes["obs_dim"], action_dim=sizes["action_dim"], goal_dims=(0, 1), eval_max_steps=1)
    zeros, ones = np.zeros(sizes["obs_dim"], np.float32), np.ones(sizes["obs_dim"], np.float32)
    info = DataInfo(spec=spec, obs_dim=sizes["obs_dim"], action_dim=sizes["action_dim"], goal_dim=2,
                    obs_mean=zeros, obs_std=ones, goal_mean=zeros[:2], goal_std=ones[:2], max_episode_length=1)
    agent = IQLAgent(cfg, info).to(dtype)
    with torch.no_grad():
        for name, nets in modules(agent).items():
            for mlp, net in zip(fixture["params"][name], nets, strict=True):
                for ref, param in pairs(mlp, net):
                    assert param.shape == ref.shape, name
                    param.copy_(torch.from_numpy(ref.astype(np.float32)))
        agent.actor.log_stds.copy_(torch.tensor(fixture["params"]["actor"][0]["log_stds"], dtype=torch.float32))
    return agent


def batch_of(fixture: dict, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(np.asarray(v, np.float32)).to(dtype) for k, v in fixture["batch"].items()}


def test_our_defaults_are_the_references_antmaze_config(fixture):
    ours, reference = dataclasses.asdict(IQLConfig()), fixture["defaults"]
    for key in SHARED_FIELDS:
        expected = reference[key]
        assert ours[key] == (tuple(expected) if isinstance(expected, list) else expected), key
    assert reference["dropout_rate"] is None  # baselines/iql.py has no dropout layers
    assert IQLConfig().for_family("antmaze").reward_shift == -1.0


def test_fixture_exercises_every_clip_and_sign(fixture):
    """The branches the comparison protects: expectile residuals and advantages of both signs, AWR weights at the
    cap and well below it, and log-stds below, inside and above their clip range."""
    residual = np.asarray(fixture["value_residual"])
    adv, weight = np.asarray(fixture["info"]["adv"]), np.asarray(fixture["adv_weight"])
    assert (residual > 0).any() and (residual < 0).any()
    assert (adv > 0).any() and (adv < 0).any()
    assert (weight == 100.0).any() and ((weight > 1e-3) & (weight < 100.0)).any()
    log_stds = np.asarray(fixture["params"]["actor"][0]["log_stds"])
    cfg = IQLConfig()
    assert (log_stds < cfg.log_std_min).any() and (log_stds > cfg.log_std_max).any()
    assert ((log_stds > cfg.log_std_min) & (log_stds < cfg.log_std_max)).any()
    assert (np.asarray(fixture["batch"]["masks"]) == 0).any() and (np.asarray(fixture["batch"]["masks"]) == 1).any()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_update_matches_the_reference(fixture, dtype):
    agent = build(fixture, dtype)
    # Keep each loss function's exact outputs (update returns them rounded to float32 for logging).
    losses: dict[str, torch.Tensor] = {}
    for name in agent.loss_functions:
        fn = getattr(agent, name)
        setattr(agent, name, lambda batch, fn=fn: losses.update(out := fn(batch)) or out)
    agent.update(batch_of(fixture, dtype), step=0)

    assert set(losses) == set(METRICS) | set(OURS_ONLY)
    info = fixture["info"]
    for ours, theirs in METRICS.items():
        expected = theirs(info) if callable(theirs) else info[theirs]
        close(losses[ours], expected, dtype, f"iql {ours} vs reference {theirs}")

    nets = modules(agent)
    for name in ("value", "actor", "critic"):  # the networks the reference differentiates
        for grad_mlp, net in zip(fixture["grads"][name], nets[name], strict=True):
            for ref, param in pairs(grad_mlp, net):
                close(param.grad, ref, dtype, f"iql gradient of {name}")
    close(agent.actor.log_stds.grad, fixture["grads"]["actor"][0]["log_stds"], dtype, "iql gradient of log_stds")
    for name, members in nets.items():
        for after_mlp, net in zip(fixture["params_after"][name], members, strict=True):
            for ref, param in pairs(after_mlp, net):
                close(param, ref, dtype, f"iql {name} after one update")
    close(agent.actor.log_stds, fixture["params_after"]["actor"][0]["log_stds"], dtype, "iql log_stds after")


def test_actor_learning_rate_follows_the_references_cosine_schedule(fixture):
    """learner.py:85-88: the actor's step is scaled by optax.cosine_decay_schedule(−lr, max_steps), one value per
    update, starting at the full rate and staying at 0 after max_steps."""
    agent = build(fixture, torch.float64)
    opt, scheduler = agent.optimizers["actor"], agent.schedulers["actor"]
    rates = []
    for _ in fixture["actor_lr_schedule"]:
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: changes nothing, keeps the optimizer-then-scheduler order
        scheduler.step()
    np.testing.assert_allclose(rates, fixture["actor_lr_schedule"], rtol=1e-12, atol=1e-18)
    assert math.isclose(rates[0], IQLConfig().actor_lr)
