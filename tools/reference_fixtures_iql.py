"""Reference fixture for IQL from the authors' own JAX code (not run by CI).

This builds ikostrikov/implicit_q_learning's `Learner` (learner.py) with its AntMaze config
(configs/antmaze_config.py) at a tiny size, runs one fixed batch through one `update` (value, actor, critic, target,
in the reference's order) and writes `tests/fixtures/reference/iql.json`: the config, the batch, the parameters
before the update, every info entry, each network's gradient (taken inside the reference's own `apply_gradient`)
and the parameters after the update. `tests/test_reference_equivalence_iql.py` copies the same parameters into our
agent (baselines/iql.py) and compares.

Parameters are stored per module (value, critic, target_critic, actor) as a list of MLPs (two for the double
critic), each `{"dense": [[W, b], ...]}` with W as (in, out), as flax stores it; the actor's last dense layer is its
mean head and it also has `log_stds`.

So that every branch the fixture protects is taken, the parameters are set before the update:
- every bias gets independent N(0, perturb²) noise, and the target critic its own noise on every weight: a loss that
  read the online critic instead of the target, or a wrong layer order, would show;
- the actor's `log_stds` are set below, inside and above the clip range [-5, 2];
- the value's output bias is moved so that the expectile residuals q − V have both signs; then the seed is the
  first from `--seed` whose batch also has AWR advantages of both signs with some weights at the cap (100) and
  some well inside (1e-3, 100). The script checks these and records the seed.
The parameters and the batch are float32 values (9 significant digits round-trip float32); the reference then runs
on them in float64 (`jax_enable_x64`), so the stored results are the exact values of its computation.

Compatibility with the JAX that fits tensorflow-probability (nothing else in the reference is changed):
- learner.py:18 calls `jax.tree_multimap`, a removed alias of `jax.tree_util.tree_map`: the script restores it;
- common.py:62 unpacks `variables.pop('params')` as a FrozenDict's (rest, value) pair: the script sets flax's
  `flax_return_frozendict` so that `init` returns a FrozenDict, as the flax of its time did;
- policy.py:66 jits `_sample_actions` with a static argument name it does not take (`distribution`), which JAX now
  rejects when the module is imported: the script drops that name while importing policy.py. Sampling is not part
  of an update.

Run it in a scratch environment (never the project's .venv; JAX on CPU is enough; these versions fit together):

    python3 -m venv /tmp/iqlref_venv && /tmp/iqlref_venv/bin/pip install "jax==0.4.30" "jaxlib==0.4.30" \\
        "flax==0.8.5" "optax==0.2.3" "tensorflow-probability==0.24.0" "numpy<2" "ml_dtypes<0.5" ml_collections
    git clone https://github.com/ikostrikov/implicit_q_learning /tmp/iqlref
    /tmp/iqlref_venv/bin/python tools/reference_fixtures_iql.py --iql /tmp/iqlref [--commit SHA]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from reference_checkout import checkout_commit, float32_digits  # noqa: E402  (tools/, the script's own folder)

from qhyer.errors import UserError, cli_main  # noqa: E402  (qhyer.errors needs nothing beyond the standard library)

OBS_DIM, ACTION_DIM, BATCH = 5, 3, 16
HIDDEN = (8, 8)
MAX_STEPS = 10             # the cosine decay's length (train_offline.py passes the run's max_steps)
LOG_STDS = (-6.0, 0.5, 2.5)  # below, inside and above the clip range [-5, 2] (learner.py:80, policy.py:16)
SEED_TRIES = 100
UPDATE_ORDER = ("value", "actor", "critic")  # the order `_update_jit` calls apply_gradient (learner.py:32-37)


def fixed_batch(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """AntMaze-style transitions: shifted sparse rewards r − 1 ∈ {−1, 0}, masks 0 where the goal was reached."""
    reached = rng.random(BATCH) < 0.25
    return {"observations": rng.standard_normal((BATCH, OBS_DIM)).astype(np.float32),
            "actions": rng.uniform(-0.99, 0.99, (BATCH, ACTION_DIM)).astype(np.float32),
            "rewards": reached.astype(np.float32) - 1.0, "masks": 1.0 - reached.astype(np.float32),
            "next_observations": rng.standard_normal((BATCH, OBS_DIM)).astype(np.float32)}


def float32_values(tree, rng: np.random.Generator, scale: float, leaves: tuple[str, ...]):
    """The tree as float32 values, with N(0, scale²) noise added to the leaves named in `leaves`."""
    import jax

    def leaf(path, value):
        value = np.asarray(value, np.float32)
        if path[-1].key in leaves:
            value = value + scale * rng.standard_normal(value.shape).astype(np.float32)
        return value
    return jax.tree_util.tree_map_with_path(leaf, tree)


def to_float64(tree):
    import jax
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def neutral_mlp(mlp: dict, head: dict | None = None) -> dict:
    """flax `MLP` params (`Dense_i`) [+ a head Dense] → {"dense": [[W, b], ...]}, as nested lists."""
    names = sorted(mlp, key=lambda k: int(k.split("_")[1]))
    dense = [mlp[k] for k in names] + ([head] if head is not None else [])
    return {"dense": [[np.asarray(d["kernel"], np.float64).tolist(), np.asarray(d["bias"], np.float64).tolist()]
                      for d in dense]}


def neutral(name: str, params) -> list[dict]:
    """One reference module (actor, critic, value; target_critic is a critic) in the neutral layout."""
    if name == "actor":
        out = neutral_mlp(params["MLP_0"], head=params["Dense_0"])
        return [{**out, "log_stds": np.asarray(params["log_stds"], np.float64).tolist()}]
    if name in ("critic", "target_critic"):
        return [neutral_mlp(params[f"Critic_{i}"]["MLP_0"]) for i in range(2)]
    if name == "value":
        return [neutral_mlp(params["MLP_0"])]
    raise UserError(f"unknown reference module '{name}'", "the reference changed; extend neutral() in this script")


def build_fixture(seed: int, perturb: float, reference: dict) -> dict:
    import jax
    from flax.core import freeze, unfreeze

    common = importlib.import_module("common")
    learner_module = importlib.import_module("learner")
    config = importlib.import_module("configs.antmaze_config").get_config()
    defaults = config.to_dict()
    overrides = {"hidden_dims": list(HIDDEN)}
    config.update({"hidden_dims": HIDDEN})

    rng = np.random.default_rng(seed)
    batch = fixed_batch(rng)
    # Built in float32 (tfp rejects the mix of float32 parameters and float64 constants under x64), run in float64.
    jax.config.update("jax_enable_x64", False)
    learner = learner_module.Learner(seed, batch["observations"][:1], batch["actions"][:1], max_steps=MAX_STEPS,
                                     **config)
    jax.config.update("jax_enable_x64", True)
    params = {
        "actor": float32_values(unfreeze(learner.actor.params), rng, perturb, ("bias",)),
        "critic": float32_values(unfreeze(learner.critic.params), rng, perturb, ("bias",)),
        "value": float32_values(unfreeze(learner.value.params), rng, perturb, ("bias",)),
    }
    params["target_critic"] = float32_values(params["critic"], rng, perturb, ("bias", "kernel"))
    params["actor"]["log_stds"] = np.asarray(LOG_STDS, np.float32)

    # Centre the expectile residuals q_target − V at 0 with the value's output bias (a float32 value).
    batch64 = {k: v.astype(np.float64) for k, v in batch.items()}
    critic_def, value_def = learner.critic.apply_fn, learner.value.apply_fn
    q_target = np.minimum(*critic_def.apply({"params": to_float64(params["target_critic"])},
                                            batch64["observations"], batch64["actions"]))
    v_old = value_def.apply({"params": to_float64(params["value"])}, batch64["observations"])
    last = sorted(params["value"]["MLP_0"], key=lambda k: int(k.split("_")[1]))[-1]
    out_bias = params["value"]["MLP_0"][last]["bias"]
    params["value"]["MLP_0"][last]["bias"] = (out_bias + np.float32(np.median(q_target - v_old))).astype(np.float32)
    value_residual = q_target - value_def.apply({"params": to_float64(params["value"])}, batch64["observations"])

    models = {}
    for name in ("actor", "critic", "value", "target_critic"):
        model = getattr(learner, name)
        p = freeze(to_float64(params[name]))
        models[name] = model.replace(params=p, opt_state=model.tx.init(p) if model.tx is not None else None)

    # Record each gradient where the reference takes it: Model.apply_gradient (common.py:81-91).
    grads: list = []
    apply_gradient = common.Model.apply_gradient

    def recording(self, loss_fn):
        grads.append(jax.grad(loss_fn, has_aux=True)(self.params)[0])
        return apply_gradient(self, loss_fn)

    common.Model.apply_gradient = recording
    try:
        with jax.disable_jit():  # eager, so the recording sees concrete arrays
            _, actor, critic, value, target_critic, info = learner_module._update_jit(
                learner.rng, models["actor"], models["critic"], models["value"], models["target_critic"],
                common.Batch(**batch64), learner.discount, learner.tau, learner.expectile, learner.temperature)
    finally:
        common.Model.apply_gradient = apply_gradient
    after = {"actor": actor, "critic": critic, "value": value, "target_critic": target_critic}

    adv = np.asarray(info["adv"], np.float64)
    # The actor's learning rate at each update: learner.py:86-88 scales Adam's step by this schedule.
    schedule = importlib.import_module("optax").cosine_decay_schedule(-config.actor_lr, MAX_STEPS)
    return {
        "agent": "iql",
        "reference": reference,
        "sizes": {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM, "batch": BATCH, "max_steps": MAX_STEPS},
        "seed": seed, "perturb_scale": perturb,
        "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()},
        "overrides": overrides,
        "batch": float32_digits({k: v.tolist() for k, v in batch.items()}),
        "params": float32_digits({name: neutral(name, params[name]) for name in params}),
        "info": {k: (np.asarray(v, np.float64).tolist() if np.ndim(v) else float(v)) for k, v in info.items()},
        "value_residual": value_residual.tolist(),
        "adv_weight": np.minimum(np.exp(adv * learner.temperature), 100.0).tolist(),
        "actor_lr_schedule": [-float(schedule(t)) for t in range(MAX_STEPS + 2)],
        "grads": {name: neutral(name, g) for name, g in zip(UPDATE_ORDER, grads, strict=True)},
        "params_after": {name: neutral(name, model.params) for name, model in after.items()},
    }


def exercises_every_branch(fixture: dict) -> bool:
    """Expectile residuals of both signs, advantages of both signs, AWR weights at the cap and some below it
    that are not negligible (so the uncapped exponential carries weight in the loss)."""
    residual, adv = np.asarray(fixture["value_residual"]), np.asarray(fixture["info"]["adv"])
    weight = np.asarray(fixture["adv_weight"])
    return bool((residual > 0).any() and (residual < 0).any() and (adv > 0).any() and (adv < 0).any()
                and (weight == 100.0).any() and ((weight > 1e-3) & (weight < 100.0)).any())


def import_policy_leniently() -> None:
    """Import the reference's policy.py with `jax.jit` ignoring static argument names the function lacks."""
    import inspect

    import jax

    jit = jax.jit

    def lenient_jit(fun, **kwargs):
        names = inspect.signature(fun).parameters
        kwargs["static_argnames"] = tuple(n for n in kwargs.get("static_argnames", ()) if n in names)
        return jit(fun, **kwargs)

    jax.jit = lenient_jit
    try:
        importlib.import_module("policy")
    finally:
        jax.jit = jit


def reference_info(checkout: Path, commit: str | None) -> dict:
    commit = checkout_commit(checkout, commit)
    import flax
    import jax
    import optax
    import tensorflow_probability
    return {"repository": "ikostrikov/implicit_q_learning", "commit": commit,
            "files": ["learner.py", "critic.py", "actor.py", "policy.py", "value_net.py", "common.py",
                      "configs/antmaze_config.py"],
            "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                         "tensorflow_probability": tensorflow_probability.__version__}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iql", type=Path, required=True, help="checkout of ikostrikov/implicit_q_learning")
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git repository")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "reference" / "iql.json")
    parser.add_argument("--seed", type=int, default=0, help="first seed tried")
    parser.add_argument("--perturb", type=float, default=1.0, help="std of the noise on biases (and target weights)")
    args = parser.parse_args()

    if not (args.iql / "learner.py").is_file():
        raise UserError(f"{args.iql}/learner.py not found",
                        "point --iql at a checkout of ikostrikov/implicit_q_learning")
    try:
        import jax
    except ImportError as err:
        raise UserError("JAX is not installed in this interpreter",
                        "run it in the scratch venv of the docstring") from err
    import flax
    flax.config.update("flax_return_frozendict", True)  # common.py:62
    if not hasattr(jax, "tree_multimap"):
        jax.tree_multimap = jax.tree_util.tree_map  # removed alias, used by learner.py:18
    sys.path.insert(0, str(args.iql))
    import_policy_leniently()
    reference = reference_info(args.iql, args.commit)
    for seed in range(args.seed, args.seed + SEED_TRIES):
        fixture = build_fixture(seed, args.perturb, reference)
        if exercises_every_branch(fixture):
            break
    else:
        raise UserError(f"no seed in {args.seed}..{args.seed + SEED_TRIES - 1} exercises every clip and sign",
                        "change --perturb or --seed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {args.out} (seed {fixture['seed']})")


if __name__ == "__main__":
    cli_main(main)
