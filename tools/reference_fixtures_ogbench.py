"""Reference fixtures for GCIQL, HIQL and GCBC from OGBench's own JAX agents (not run by CI).

For each agent this builds OGBench's implementation (seohongpark/ogbench `impls/agents/{gciql,hiql,gcbc}.py`) at a
tiny size, runs one fixed batch through `total_loss` and one `update`, and writes to
`tests/fixtures/reference/<agent>.json`: the config, the batch, the parameters before the update, every loss and
info entry, the gradients and their norm per module, and the parameters after the update (online and target).
`tests/test_reference_equivalence.py` copies the same parameters into our agents and compares.

Parameters are stored in a neutral layout: module name (OGBench's, without `modules_`) → list of MLPs (two for an
ensemble, one otherwise), each `{"dense": [[W, b], ...], "layer_norm": [[scale, bias], ...]}` with W as (in, out),
as flax stores it. An actor's `mean_net` is its last dense layer; HIQL's `goal_rep` is its inner MLP.

OGBench initialises every bias to 0 and every LayerNorm to (1, 0), and each target network to a copy of its online
network. A wrong layer order or a loss that reads the online network instead of the target would then go unseen,
so every bias and LayerNorm parameter gets independent Gaussian noise (`--perturb`) before the losses are taken.
At the default std 1 this also pushes one of GCIQL's two actor means past −1, so DDPG+BC's action clip is exercised.

The parameters and the batch are float32 values (stored with 9 significant digits, which round-trips float32);
OGBench's code then runs on them in float64 (`jax_enable_x64`), so the losses, gradients and updated parameters are
the exact values of its computation, free of any library's float32 rounding (stored in full float64 precision).

Run it in a scratch environment (never the project's .venv; JAX on CPU is enough):

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install jax jaxlib flax optax distrax ml_collections
    git clone https://github.com/seohongpark/ogbench /tmp/ogbench     # or any export of its impls/ folder
    /tmp/refvenv/bin/python tools/reference_fixtures_ogbench.py --ogbench /tmp/ogbench [--commit SHA]
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

# Tiny sizes: every module is small enough that the whole fixture stays under 200 KB.
OBS_DIM, ACTION_DIM, BATCH = 5, 3, 8   # goals are full observations (OGBench's state-based default)
HIDDEN = (8, 8)                         # value_hidden_dims and actor_hidden_dims
AGENTS = {"gciql": "GCIQLAgent", "hiql": "HIQLAgent", "gcbc": "GCBCAgent"}
# Settings that make the fixture reach every branch it protects (tests/test_reference_equivalence.py
# `branch_counts` checks each): HIQL's AWR weights exp(α·adv) must straddle their cap of 100, which α = 3 and
# advantages of about ±0.5 never reach, so both levels' temperatures are raised for the fixture (the test still
# pins our defaults to OGBench's separately). SEEDS: the first seed from 0 at which every branch is hit (the
# action clip on both sides and inside, both signs of every advantage, each ensemble member as the minimum where it
# changes the loss, AWR weights on both sides of the cap), found by trying seeds in order.
FIXTURE_OVERRIDES = {"hiql": {"low_alpha": 10.0, "high_alpha": 10.0}}
SEEDS = {"gciql": 39, "hiql": 6, "gcbc": 0}
HIQL_GOAL_KEYS = ("low_actor_goals", "high_actor_goals", "high_actor_targets")  # HGCDataset's extra batch fields


def fixed_batch(agent: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One batch of B transitions; row 0 reached its value goal, the others did not."""
    def states() -> np.ndarray:
        return rng.standard_normal((BATCH, OBS_DIM)).astype(np.float32)

    success = np.arange(BATCH) == 0
    batch = {"observations": states(), "next_observations": states(), "value_goals": states(),
             "actor_goals": states(), "actions": rng.uniform(-1, 1, (BATCH, ACTION_DIM)).astype(np.float32),
             # GCDataset with gc_negative: reward 0 at the goal else −1, mask 0 at the goal else 1
             "rewards": success.astype(np.float32) - 1.0, "masks": 1.0 - success.astype(np.float32)}
    if agent == "hiql":
        batch.update({key: states() for key in HIQL_GOAL_KEYS})
    return batch


def perturb(params, rng: np.random.Generator, scale: float):
    """Independent N(0, scale²) noise on every bias and LayerNorm scale (see the module docstring)."""
    import jax

    def leaf(path, value):
        if path[-1].key not in ("bias", "scale"):
            return value
        return value + scale * rng.standard_normal(value.shape).astype(np.float32)
    return jax.tree_util.tree_map_with_path(leaf, params)


def neutral_mlp(tree: dict, member: int | None, extra_dense: dict | None = None) -> dict:
    """flax `MLP` params (`Dense_i`, `LayerNorm_i`; ensembles stacked on axis 0) → neutral layout."""
    def pick(x) -> list:
        return np.asarray(x if member is None else x[member], np.float64).tolist()

    def indexed(prefix: str) -> list[str]:
        return sorted((k for k in tree if k.startswith(prefix)), key=lambda k: int(k.split("_")[1]))

    dense = [[pick(tree[k]["kernel"]), pick(tree[k]["bias"])] for k in indexed("Dense_")]
    if extra_dense is not None:
        dense.append([pick(extra_dense["kernel"]), pick(extra_dense["bias"])])
    norms = [[pick(tree[k]["scale"]), pick(tree[k]["bias"])] for k in indexed("LayerNorm_")]
    return {"dense": dense, "layer_norm": norms}


def neutral(params) -> dict[str, list[dict]]:
    """Every OGBench module of a parameter (or gradient) tree in the neutral layout."""
    out = {}
    for full_name, tree in params.items():
        name = full_name.removeprefix("modules_")
        if "value_net" in tree:                       # GCValue, ensembled (kernels (2, in, out)) or not
            net = tree["value_net"]
            members = [0, 1] if np.ndim(net["Dense_0"]["kernel"]) == 3 else [None]
            out[name] = [neutral_mlp(net, m) for m in members]
        elif "actor_net" in tree:                     # GCActor: hidden MLP, then the mean head
            out[name] = [neutral_mlp(tree["actor_net"], None, extra_dense=tree["mean_net"])]
        elif "layers_0" in tree:                      # HIQL goal_rep: Sequential([MLP, LengthNormalize])
            out[name] = [neutral_mlp(tree["layers_0"], None)]
        else:
            raise UserError(f"unknown OGBench module layout '{full_name}'",
                            "the reference changed its networks; extend neutral() in this script")
    return out


def module_grad_norms(grads) -> dict[str, float]:
    """L2 norm over all gradient entries of each module (independent of how layers are stored)."""
    import jax
    return {name.removeprefix("modules_"): float(np.sqrt(sum(float(np.sum(np.square(leaf)))
                                                             for leaf in jax.tree_util.tree_leaves(tree))))
            for name, tree in grads.items()}


def build_fixture(agent_name: str, seed: int, perturb_scale: float, reference: dict) -> dict:
    import jax
    import ml_collections

    module = importlib.import_module(f"agents.{agent_name}")
    config = module.get_config()
    defaults = config.to_dict()
    overrides = {"actor_hidden_dims": HIDDEN, **FIXTURE_OVERRIDES.get(agent_name, {})}
    if "value_hidden_dims" in config:
        overrides["value_hidden_dims"] = HIDDEN
    config.update(overrides)

    rng = np.random.default_rng(seed)
    batch = fixed_batch(agent_name, rng)
    agent = getattr(module, AGENTS[agent_name]).create(seed, batch["observations"], batch["actions"], config)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64),
                                    perturb(agent.network.params, rng, perturb_scale))
    batch = {k: v.astype(np.float64) for k, v in batch.items()}
    agent = agent.replace(network=agent.network.replace(params=params))

    loss, info = agent.total_loss(batch, params)
    grads = jax.grad(lambda p: agent.total_loss(batch, p)[0])(params)
    updated, _ = agent.update(batch)

    def plain(value):  # ConfigDict values → JSON (tuples as lists, placeholders as None)
        return list(value) if isinstance(value, tuple) else value
    return {
        "agent": agent_name,
        "reference": {**reference, "file": f"impls/agents/{agent_name}.py"},
        "sizes": {"obs_dim": OBS_DIM, "goal_dim": OBS_DIM, "action_dim": ACTION_DIM, "batch": BATCH},
        "seed": seed, "perturb_scale": perturb_scale,
        "defaults": {k: plain(v) for k, v in defaults.items()
                     if not isinstance(v, ml_collections.config_dict.FieldReference)},
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "batch": float32_digits({k: v.tolist() for k, v in batch.items()}),
        "params": float32_digits(neutral(params)),
        "losses": {"loss": float(loss), **{k: float(v) for k, v in info.items()}},
        "grads": neutral(grads),
        "grad_norms": module_grad_norms(grads),
        "params_after": neutral(updated.network.params),
    }


def reference_info(ogbench: Path, commit: str | None) -> dict:
    commit = checkout_commit(ogbench, commit)
    import flax
    import jax
    import optax
    return {"repository": "seohongpark/ogbench", "commit": commit,
            "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ogbench", type=Path, required=True, help="checkout of seohongpark/ogbench")
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git repository")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "reference")
    parser.add_argument("--agents", nargs="+", choices=sorted(AGENTS), default=sorted(AGENTS))
    parser.add_argument("--seed", type=int, help="one seed for every agent (default: SEEDS)")
    parser.add_argument("--perturb", type=float, default=1.0, help="std of the noise on biases and LayerNorms")
    args = parser.parse_args()

    impls = args.ogbench / "impls"
    if not (impls / "agents" / "gciql.py").is_file():
        raise UserError(f"{impls}/agents/gciql.py not found", "point --ogbench at a checkout of seohongpark/ogbench")
    try:
        import jax
    except ImportError as err:
        raise UserError("jax is not installed in this environment",
                        "pip install jax jaxlib flax optax distrax ml_collections (into a scratch venv)") from err
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(impls))

    reference = reference_info(args.ogbench, args.commit)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.agents:
        path = args.out / f"{name}.json"
        seed = SEEDS[name] if args.seed is None else args.seed
        text = json.dumps(build_fixture(name, seed, args.perturb, reference), separators=(",", ":")) + "\n"
        path.write_text(text)
        print(f"{path}: {len(text) / 1024:.0f} KB")


if __name__ == "__main__":
    cli_main(main)
