"""DT, QT and LSDT against their authors' PyTorch code: one update from the same weights on the same batch.

Fixtures: tests/fixtures/reference/{dt,qt,lsdt}.json, written by tools/reference_fixtures_sequence.py from
kzl/decision-transformer (gym/decision_transformer/models/decision_transformer.py + trajectory_gpt2.py,
training/seq_trainer.py), charleshsc/QT (decision_transformer/models/ql_DT.py, training/ql_trainer.py) and
WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER (decision_transformer/LSDT.py, scripts/train.py's update).

Tolerance (float32): losses and gradient norms to a relative 1e-5, weights after the update to an absolute 1e-6
(the first Adam step moves every weight by about the learning rate, 2.5e-5 to 3e-4 here).

Entries whose gradient is zero in exact arithmetic: attention key biases. A bias added to every key adds q·b_k to
all logits of a query alike, and softmax ignores a constant, so ∂loss/∂b_k = 0. In float32 the backward pass leaves
rounding noise there (~1e-10), and Adam's first step normalises it to ±lr·sign(noise): which sign depends on the
CPU's kernels (AVX2 and AVX-512 differ), so those weights after the update are not comparable entry by entry. They
are compared by what holds in exact arithmetic: a first Adam step moves an entry by at most the learning rate
(|m̂ / (√v̂ + ε)| ≤ 1), so ours and the reference's differ by at most 2·lr (ZERO_GRADIENT rule), and our float32
gradient there is rounding noise. `test_zero_gradient_entries_are_exactly_the_key_biases` finds every entry whose
gradient vanishes in float64 but not in float32 and checks that these are the key biases, so no other entry is
exempted (entries with an exactly zero float32 gradient — unused timestep rows, LSDT's conv taps beyond the window —
are left unchanged by Adam on both sides and stay compared exactly).

Intended differences, and how each fixture keeps the comparison exact where it is meant to be:
- Goal input: ours concatenates the goal to the state token; DT and LSDT receive [s; g] as their state.
- QT's next-state head predicts its whole state input; ours predicts the observation only. The QT fixture has no
  goal (goal dimension 0), so both predict the same thing.
- Activation: kzl's and QT's GPT-2 use ReLU (experiment.py --activation_function relu); ours GELU as CORL. The
  fixtures are built with GELU.
- Returns-to-go: ours are the relabelled 0/1 returns (or D4RL's under protocol 'source'); the fixture gives both
  the same tokens, so the models and updates are compared, not the data protocol.
- Padding: LSDT pads windows on the right where causality hides it, ours on the left with a key mask; its fixture
  has no padding. DT and QT pad on the left as ours (row 0 has one padded step).
- QT: our TD recursion also stops at goal-reaching steps (`td_targets`); the fixture has no terminal step, where
  the two agree. QT's logged `target_q_mean` averages padded steps too, so it is not compared.
- LSDT's separate q/k/v Linears are our fused `qkv` (stacked in the fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qhyer.agent import DataInfo
from qhyer.data.registry import DatasetSpec
from qhyer.methods import method_classes

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
LOSS_RTOL, GRAD_RTOL, WEIGHT_ATOL = 1e-5, 1e-5, 1e-6
NOISE_RTOL = 1e-5  # a float32 gradient entry at most this × the parameter's largest entry is rounding noise
# Our metric name ← the reference's
LOSS_NAMES = {"dt": {"loss": "loss"}, "lsdt": {"loss": "loss"},
              "qt": {"critic_loss": "critic_loss", "bc_loss": "bc_loss", "q_loss": "ql_loss",
                     "actor_loss": "actor_loss"}}


def load(method: str) -> dict:
    return json.loads((FIXTURES / f"{method}.json").read_text())


def build_agent(method: str, fixture: dict):
    """Our agent at the fixture's sizes and settings, identity input standardisation, the fixture's weights."""
    cfg = fixture["config"]
    sizes = {key: cfg[key] for key in ("context_len", "embed_dim", "n_layers", "n_heads", "lr", "weight_decay",
                                       "warmup_steps", "grad_clip")}
    extra = {"dt": {"dropout": 0.0},
             "qt": {"dropout": 0.0, "critic_lr": cfg.get("critic_lr"), "eta": cfg.get("eta"),
                    "discount": cfg.get("discount"), "tau": cfg.get("tau"), "lr_decay_steps": 100},
             "lsdt": {"dropout": 0.0, "attn_dropout": 0.0, "kernel_dropout": 0.0, "conv_dim": cfg.get("conv_dim"),
                      "kernel_size": cfg.get("kernel_size"), "lr_decay_steps": cfg.get("lr_decay_steps")}}[method]
    config_cls, agent_cls = method_classes(method)
    method_cfg = config_cls(**sizes, **extra).for_family("ogbench_play")
    obs_dim, goal_dim = cfg["obs_dim"], cfg["goal_dim"]
    spec = DatasetSpec(name="reference-fixture", family="ogbench", env_id="fixture", kind="play", obs_dim=obs_dim,
                       action_dim=cfg["action_dim"], goal_dims=tuple(range(goal_dim)), eval_max_steps=10)
    info = DataInfo(spec=spec, obs_dim=obs_dim, action_dim=cfg["action_dim"], goal_dim=goal_dim,
                    obs_mean=np.zeros(obs_dim, np.float32), obs_std=np.ones(obs_dim, np.float32),
                    goal_mean=np.zeros(goal_dim, np.float32), goal_std=np.ones(goal_dim, np.float32),
                    max_episode_length=cfg["max_episode_length"])
    agent = agent_cls(method_cfg, info)
    weights = {name: torch.tensor(value) for name, value in fixture["weights_before"].items()}
    if method == "qt":  # the reference's EMA actor and target critic start as copies (deepcopy), as ours
        weights.update({name.replace("model.", "ema_model.", 1): value for name, value in weights.items()
                        if name.startswith("model.")})
        weights.update({name.replace("critic.", "critic_target.", 1): value for name, value in weights.items()
                        if name.startswith("critic.")})
    missing, unexpected = agent.load_state_dict(weights, strict=False)
    buffers = {name for name, _ in agent.named_buffers()}
    assert not unexpected and set(missing) <= buffers, (missing, unexpected)
    return agent


def fixture_batch(fixture: dict) -> dict[str, torch.Tensor]:
    raw = fixture["batch"]
    batch = {key: torch.tensor(value) for key, value in raw.items()}
    batch["mask"], batch["dones"] = batch["mask"].bool(), batch["dones"].bool()
    batch["goals"] = batch["goals"].float().reshape(len(raw["mask"]), fixture["config"]["goal_dim"])
    return batch


def key_bias_mask(name: str, param: torch.Tensor) -> torch.Tensor | None:
    """Entries of a fused [q; k; v] attention bias that are key biases (zero gradient in exact arithmetic)."""
    if not name.endswith("qkv.bias"):
        return None
    mask = torch.zeros_like(param, dtype=torch.bool)
    third = param.numel() // 3
    mask[third:2 * third] = True
    return mask


def recording_clip(grads: dict[int, torch.Tensor]):
    """A `clip_grad_norm_` that first records every parameter's gradient (both QT clips), by parameter object."""
    original = torch.nn.utils.clip_grad_norm_

    def clip(parameters, *args, **kwargs):
        parameters = list(parameters)
        grads.update({id(p): p.grad.detach().clone() for p in parameters if p.grad is not None})
        return original(parameters, *args, **kwargs)
    return clip


def one_update(method: str, fixture: dict, monkeypatch, dtype: torch.dtype = torch.float32):
    """(agent after one update on the fixture's batch, {name: gradient before clipping}, metrics)."""
    grads: dict[int, torch.Tensor] = {}
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip(grads))
    if method == "qt":  # the reference drew np.random.uniform() for its Q1/Q2 role swap
        monkeypatch.setattr("baselines.qt.random.random", lambda: fixture["swap_draw"])
    torch.manual_seed(0)
    agent = build_agent(method, fixture).train()
    batch = fixture_batch(fixture)
    if dtype == torch.float64:
        # The agents cast their inputs with .float() (they train in float32); for this float64 pass the casts
        # keep float64, so the whole update runs in float64.
        agent = agent.double()
        batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
        monkeypatch.setattr(torch.Tensor, "float", lambda self: self.to(torch.float64))
    metrics = agent.update(batch, step=0)
    monkeypatch.undo()
    named = {name: grads[id(p)] for name, p in agent.named_parameters() if id(p) in grads}
    return agent, named, metrics


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
def test_one_update_matches_reference(method, monkeypatch):
    fixture = load(method)
    agent, grads, metrics = one_update(method, fixture, monkeypatch)

    for ours, reference in LOSS_NAMES[method].items():
        assert metrics[ours] == pytest.approx(fixture["losses"][reference], rel=LOSS_RTOL), ours

    norms = {name: float(grad.norm()) for name, grad in grads.items()}
    assert norms.keys() == fixture["grad_norms"].keys()
    for name, expected in fixture["grad_norms"].items():
        assert norms[name] == pytest.approx(expected, rel=GRAD_RTOL, abs=1e-8), name

    state = agent.state_dict()
    largest_lr = max(lr for lr in (fixture["config"]["lr"], fixture["config"].get("critic_lr")) if lr)
    exempted = 0
    for name, expected in fixture["weights_after"].items():
        ours, expected = state[name], torch.tensor(expected)
        noise = key_bias_mask(name, ours)
        if noise is not None:  # zero gradient in exact arithmetic: the rule of the module docstring
            grad = grads[name]
            assert grad[noise].abs().max() <= NOISE_RTOL * grad.abs().max(), f"{name}: key-bias gradient not noise"
            assert (ours[noise] - expected[noise]).abs().max() <= 2 * largest_lr, name
            ours, expected = ours[~noise], expected[~noise]
            exempted += 1
        torch.testing.assert_close(ours, expected, rtol=0, atol=WEIGHT_ATOL, msg=name)
    assert exempted == fixture["config"]["n_layers"], "a block's key biases were not found"
    still = [name for name, before in fixture["weights_before"].items()
             if torch.equal(state[name], torch.tensor(before))]
    assert not still, f"the update left {still} unchanged"


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
def test_zero_gradient_entries_are_exactly_the_key_biases(method, monkeypatch):
    """The entries exempted above are all and only those whose gradient is zero in exact arithmetic (float64 here)
    while float32 leaves noise there: the exemption can neither hide a wrong gradient nor miss a noisy entry."""
    fixture = load(method)
    _, grads32, _ = one_update(method, fixture, monkeypatch)
    _, grads64, _ = one_update(method, fixture, monkeypatch, torch.float64)
    key_biases = 0
    for name, g64 in grads64.items():
        vanishing = g64.abs() <= 1e-12 * g64.abs().max()
        key_bias = key_bias_mask(name, g64)
        if key_bias is None:
            key_bias = torch.zeros_like(vanishing)
        else:
            key_biases += 1
        assert vanishing[key_bias].all(), f"{name}: a key-bias gradient is not zero in float64"
        # float32 noise (a nonzero gradient where the exact one vanishes) only at key biases; an exactly zero
        # float32 gradient (rows and taps that take no part in the batch) leaves the entry unchanged on both sides.
        assert not (vanishing & ~key_bias & (grads32[name] != 0)).any(), f"{name}: noise outside the key biases"
    assert key_biases > 0


def test_fixtures_are_small_and_cite_their_reference():
    for method in ("dt", "qt", "lsdt"):
        path = FIXTURES / f"{method}.json"
        assert path.stat().st_size < 300_000
        assert len(load(method)["reference_commit"]) == 40
