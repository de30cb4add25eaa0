"""Reference fixtures for DT, QT and LSDT from their authors' PyTorch code (not run by CI).

For each method this builds the reference model at a tiny size, perturbs every parameter (so zero biases and unit
LayerNorms cannot hide a wrong layer order), runs one fixed batch through one reference update and writes
`tests/fixtures/reference/<method>.json`: the config, the batch, the parameters before the update, every loss term,
the gradient norm of every parameter before clipping, and the parameters after the update.
`tests/test_reference_equivalence_sequence.py` copies the same parameters into our agents and compares.

References (one method per run: their packages are all named `decision_transformer`):
- dt: kzl/decision-transformer, gym/decision_transformer/models/decision_transformer.py (+ trajectory_gpt2.py, a
  GPT-2 without position embeddings) trained by gym/decision_transformer/training/seq_trainer.py with
  gym/experiment.py's AdamW and warmup LambdaLR;
- qt: charleshsc/QT, decision_transformer/models/ql_DT.py (actor and Critic) trained by
  decision_transformer/training/ql_trainer.py `Trainer.train_step` (`--k_rewards --use_discount`);
- lsdt: WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER, decision_transformer/LSDT.py; its update is written
  inline in scripts/train.py (forward, masked action MSE, clip 0.25, AdamW, `create_combined_lambda`), so the step
  below follows those lines.

Layout: every parameter under the harness's name (`baselines/*.py` agents' `state_dict` keys), Linear weights as
(out, in). GPT-2's Conv1D weights are transposed; LSDT's separate q/k/v Linears are stacked into our fused `qkv`.
Settings that make the comparison exact where it is meant to be (each named in the test): dropout 0; GELU in
GPT-2 (DT and QT use ReLU); DT and LSDT get [s; g] as their state; QT gets no goal (its next-state head would
otherwise predict the goal too); LSDT windows have no padding (it pads on the right, we on the left).

Run it in a scratch environment (never the project's .venv):

    python3 -m venv /tmp/seqref_venv && /tmp/seqref_venv/bin/pip install torch==2.13.0 numpy pandas transformers==4.30.2
    git clone https://github.com/charleshsc/QT /tmp/QT      # or an export of any of the three repositories
    /tmp/seqref_venv/bin/python tools/reference_fixtures_sequence.py qt --reference /tmp/QT [--commit SHA]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from qhyer.errors import UserError, cli_main  # noqa: E402  (qhyer.errors needs nothing beyond the standard library)

# Tiny sizes; padding in row 0 (one step) for DT and QT.
SIZES = {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "context_len": 4, "batch": 3, "obs_dim": 3, "goal_dim": 2,
         "action_dim": 2, "max_episode_length": 8}
METHOD_SETTINGS = {
    # DT: AdamW lr 1e-4, wd 1e-4, clip 0.25 (seq_trainer.py), warmup 4 so the first step runs at lr / 4.
    "dt": {"lr": 1e-4, "weight_decay": 1e-4, "warmup_steps": 4, "grad_clip": 0.25, "goal_dim": 2, "padded": True},
    # QT: Adam lr 3e-4 (actor wd 1e-4, critic none), a clip that binds, maze2d-medium's eta, discount 0.99.
    "qt": {"lr": 3e-4, "critic_lr": 3e-4, "weight_decay": 1e-4, "warmup_steps": 0, "grad_clip": 1.0, "eta": 5.0,
           "discount": 0.99, "tau": 0.005, "goal_dim": 0, "obs_dim": 5, "padded": True},
    # LSDT: AdamW lr 1e-4, wd 1e-4, clip 0.25, warmup 4 of 100 updates; conv on 8 of the 16 channels, 11 taps.
    "lsdt": {"lr": 1e-4, "weight_decay": 1e-4, "warmup_steps": 4, "grad_clip": 0.25, "lr_decay_steps": 100,
             "conv_dim": 8, "kernel_size": 11, "goal_dim": 2, "padded": False},
}
PERTURB = 0.1   # std of the Gaussian noise added to every reference parameter


def settings(method: str) -> dict:
    return {**SIZES, **METHOD_SETTINGS[method]}


def fixed_batch(cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One batch of windows in our layout (WindowSampler keys); row 0 is left-padded by one step when `padded`."""
    b, k = cfg["batch"], cfg["context_len"]
    mask = np.ones((b, k), bool)
    if cfg["padded"]:
        mask[0, 0] = False
    start = rng.integers(0, cfg["max_episode_length"] - k, size=(b, 1))
    batch = {
        "observations": rng.standard_normal((b, k, cfg["obs_dim"])).astype(np.float32),
        "goals": rng.standard_normal((b, cfg["goal_dim"])).astype(np.float32),
        "actions": rng.uniform(-0.9, 0.9, (b, k, cfg["action_dim"])).astype(np.float32),
        "returns_to_go": rng.uniform(0, 2, (b, k)).astype(np.float32),
        "rewards": rng.integers(0, 2, (b, k)).astype(np.float32),
        "dones": np.zeros((b, k), bool),   # QT reads only the last step's done; none keeps both definitions equal
        "timesteps": start + np.arange(k),
        "mask": mask,
    }
    for key in ("observations", "actions", "returns_to_go", "rewards", "timesteps"):
        batch[key][~mask] = 0
    return batch


def reference_inputs(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The reference's tensors: [s; g] states (goal repeated per step), (B, K, 1) returns and rewards, a long mask,
    and returns-to-go with one extra step (their trainers feed rtg[:, :-1])."""
    obs, goals = batch["observations"], batch["goals"]
    states = np.concatenate([obs, np.repeat(goals[:, None], obs.shape[1], axis=1)], axis=-1)
    states[~batch["mask"]] = 0
    rtg = np.concatenate([batch["returns_to_go"], np.zeros_like(batch["returns_to_go"][:, :1])], axis=1)
    return {"states": torch.tensor(states), "actions": torch.tensor(batch["actions"]),
            "rewards": torch.tensor(batch["rewards"])[..., None], "rtg": torch.tensor(rtg)[..., None],
            "dones": torch.tensor(batch["dones"]).long()[..., None], "timesteps": torch.tensor(batch["timesteps"]),
            "mask": torch.tensor(batch["mask"]).long()}


# --- parameter names: ours ← the reference's (a list is stacked along dim 0; T = transposed Conv1D) -------------
def linear(ours: str, ref: str | list[str], transpose: bool = False) -> list[tuple[str, list[str], bool]]:
    refs = [ref] if isinstance(ref, str) else ref
    return [(f"{ours}.weight", [f"{r}.weight" for r in refs], transpose),
            (f"{ours}.bias", [f"{r}.bias" for r in refs], False)]


def embeddings(return_name: str) -> list:
    return [*linear("model.embed_return", return_name), *linear("model.embed_state", "embed_state"),
            *linear("model.embed_action", "embed_action"), ("model.embed_timestep.weight", ["embed_timestep.weight"],
                                                            False),
            *linear("model.embed_ln", "embed_ln"), *linear("model.action_head.0", "predict_action.0")]


def gpt_names(n_layers: int) -> list:
    names = [*embeddings("embed_return"), *linear("model.final_ln", "transformer.ln_f")]
    for i in range(n_layers):
        ref, ours = f"transformer.h.{i}", f"model.blocks.{i}"
        names += [*linear(f"{ours}.ln1", f"{ref}.ln_1"), *linear(f"{ours}.ln2", f"{ref}.ln_2"),
                  *linear(f"{ours}.attn.qkv", f"{ref}.attn.c_attn", True),
                  *linear(f"{ours}.attn.proj", f"{ref}.attn.c_proj", True),
                  *linear(f"{ours}.ff.0", f"{ref}.mlp.c_fc", True), *linear(f"{ours}.ff.2", f"{ref}.mlp.c_proj", True)]
    return names


def lsdt_names(n_layers: int) -> list:
    names = embeddings("embed_rtg")
    for i in range(n_layers):
        ref, ours = f"transformer.{i}", f"model.blocks.{i}"
        att, conv = f"{ref}.attention", f"{ref}.attention.Dynamicconv_layer"
        names += [*linear(f"{ours}.ln1", f"{ref}.ln1"), *linear(f"{ours}.ln2", f"{ref}.ln2"),
                  *linear(f"{ours}.mix.attention.qkv", [f"{att}.q_net", f"{att}.k_net", f"{att}.v_net"]),
                  *linear(f"{ours}.mix.conv.glu_in", f"{conv}.linear1"),
                  *linear(f"{ours}.mix.conv.kernel", f"{conv}.linear_weight"),
                  (f"{ours}.mix.conv.bias", [f"{conv}.bias"], False),
                  *linear(f"{ours}.mix.conv.out", f"{conv}.linear2"),
                  *linear(f"{ours}.mix.fuse_hidden.0", f"{att}.fmlp.0"), *linear(f"{ours}.mix.fuse_att", f"{att}.fl1"),
                  *linear(f"{ours}.mix.fuse_conv", f"{att}.fl2"), *linear(f"{ours}.mix.proj", f"{att}.proj_net"),
                  *linear(f"{ours}.ff.0", f"{ref}.mlp.0"), *linear(f"{ours}.ff.2", f"{ref}.mlp.2")]
    return names


def critic_names() -> list:
    return [name for q in ("q1", "q2") for layer in (0, 2, 4, 6)
            for name in linear(f"critic.{q}.{layer}", f"critic.{q}_model.{layer}")]


def neutral(values: dict[str, torch.Tensor], names: list) -> dict[str, list]:
    """Reference tensors (by reference name) → our names and layout, as nested lists."""
    out = {}
    for ours, refs, transpose in names:
        parts = [values[r].detach().T if transpose else values[r].detach() for r in refs]
        out[ours] = float32_list(torch.cat(parts))
    return out


def float32_list(values: torch.Tensor | np.ndarray) -> list:
    """Nested lists of float32 values, each written with the 9 significant digits that round-trip float32."""
    array = np.asarray(values, dtype=np.float32)
    return np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[float])(array).tolist() if array.size else []


def grad_norms(params: dict[str, nn.Parameter], names: list) -> dict[str, float]:
    """Norm of each of our parameters' gradient (stacked parts count together); absent gradients are left out."""
    out = {}
    for ours, refs, _ in names:
        grads = [params[r].grad for r in refs]
        if all(g is not None for g in grads):
            out[ours] = float(torch.sqrt(sum(g.pow(2).sum() for g in grads)))
    return out


@contextlib.contextmanager
def recorded_clipping(record: list):
    """Record every parameter's gradient norm before each `clip_grad_norm_` call (the references call it through
    the `torch.nn.utils` attribute, so this sees both QT clips in order)."""
    original = torch.nn.utils.clip_grad_norm_

    def clip(parameters, *args, **kwargs):
        parameters = list(parameters)
        record.append({id(p): p.grad.detach().clone() for p in parameters if p.grad is not None})
        return original(parameters, *args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = clip
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = original


def norms_from_record(record: list, params: dict[str, nn.Parameter], names: list) -> dict[str, float]:
    grads = {}
    for clip in record:
        grads.update(clip)
    out = {}
    for ours, refs, _ in names:
        parts = [grads.get(id(params[r])) for r in refs]
        if all(p is not None for p in parts):
            out[ours] = float(torch.sqrt(sum(p.pow(2).sum() for p in parts)))
    return out


def perturb(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(PERTURB * torch.randn(p.shape, generator=generator))


def gpt_kwargs(cfg: dict) -> dict:
    """GPT2Config arguments as experiment.py passes them, with GELU (ours) instead of its default ReLU, dropout 0,
    and n_ctx 1024, GPT2Config's default in transformers 4.5 (trajectory_gpt2.py reads it; 4.30 dropped it)."""
    return {"n_layer": cfg["n_layers"], "n_head": cfg["n_heads"], "n_inner": 4 * cfg["embed_dim"],
            "activation_function": "gelu", "n_positions": 1024, "n_ctx": 1024, "resid_pdrop": 0.0,
            "attn_pdrop": 0.0, "embd_pdrop": 0.0}


# --- one reference update per method ------------------------------------------------------------------------------
def import_gpt2_model(module: str):
    """Import a module that imports trajectory_gpt2.py, written for transformers 4.5 (kzl's pin). Only one thing
    breaks on the transformers 4.30 that installs on Python 3.11: a docstring decorator's keyword, so the decorator
    is replaced by one that leaves the class unchanged."""
    file_utils = importlib.import_module("transformers.file_utils")
    original = file_utils.add_code_sample_docstrings
    file_utils.add_code_sample_docstrings = lambda *args, **kwargs: (lambda fn: fn)
    try:
        return importlib.import_module(module)
    finally:
        file_utils.add_code_sample_docstrings = original


def run_dt(cfg: dict, batch: dict, generator: torch.Generator) -> dict:
    dt_module = import_gpt2_model("decision_transformer.models.decision_transformer")
    seq_trainer = importlib.import_module("decision_transformer.training.seq_trainer")
    x = reference_inputs(batch)
    model = dt_module.DecisionTransformer(state_dim=x["states"].shape[-1], act_dim=cfg["action_dim"],
                                          hidden_size=cfg["embed_dim"], max_length=cfg["context_len"],
                                          max_ep_len=cfg["max_episode_length"], **gpt_kwargs(cfg))
    perturb(model, generator)
    names = gpt_names(cfg["n_layers"])
    params = dict(model.named_parameters())
    before = neutral(params, names)
    # gym/experiment.py: AdamW + LambdaLR(min((steps + 1) / warmup_steps, 1)); loss_fn = mean((a_hat - a)^2).
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda steps: min((steps + 1) / cfg["warmup_steps"], 1))
    trainer = seq_trainer.SequenceTrainer(
        model=model, optimizer=optimizer, batch_size=cfg["batch"], scheduler=scheduler,
        get_batch=lambda _: (x["states"], x["actions"], x["rewards"], x["dones"], x["rtg"], x["timesteps"], x["mask"]),
        loss_fn=lambda s_hat, a_hat, r_hat, s, a, r: torch.mean((a_hat - a) ** 2))
    record: list = []
    model.train()
    with recorded_clipping(record):
        loss = trainer.train_step()
    return {"weights_before": before, "losses": {"loss": loss},
            "grad_norms": norms_from_record(record, params, names), "weights_after": neutral(params, names)}


def run_qt(cfg: dict, batch: dict, generator: torch.Generator) -> dict:
    ql_dt = import_gpt2_model("decision_transformer.models.ql_DT")
    ql_trainer = importlib.import_module("decision_transformer.training.ql_trainer")
    x = reference_inputs(batch)
    state_dim = x["states"].shape[-1]
    actor = ql_dt.DecisionTransformer(state_dim=state_dim, act_dim=cfg["action_dim"], hidden_size=cfg["embed_dim"],
                                      max_length=cfg["context_len"], max_ep_len=cfg["max_episode_length"],
                                      scale=1.0, **gpt_kwargs(cfg))
    critic = ql_dt.Critic(state_dim, cfg["action_dim"], hidden_dim=cfg["embed_dim"])
    perturb(actor, generator)
    perturb(critic, generator)
    holder = nn.ModuleDict({"actor": actor, "critic": critic})
    names = [(o, [f"actor.{r}" for r in refs], t) for o, refs, t in
             gpt_names(cfg["n_layers"]) + linear("state_head", "predict_state")] + critic_names()
    params = dict(holder.named_parameters())
    before = neutral(params, names)
    trainer = ql_trainer.Trainer(
        model=actor, critic=critic, batch_size=cfg["batch"], tau=cfg["tau"], discount=cfg["discount"],
        get_batch=lambda _: (x["states"], x["actions"], x["rewards"].clone(), x["actions"], x["dones"], x["rtg"],
                             x["timesteps"], x["mask"]),
        loss_fn=None, eta=cfg["eta"], lr=cfg["lr"], weight_decay=cfg["weight_decay"], lr_decay=True,
        lr_maxt=100, grad_norm=cfg["grad_clip"], scale=1.0, k_rewards=True, use_discount=True)
    # The actor's random choice between −Q1/|Q2| and −Q2/|Q1| is one np.random.uniform() draw.
    np.random.seed(0)
    swap_draw = float(np.random.uniform())
    np.random.seed(0)
    metrics = {key: [] for key in ("bc_loss", "ql_loss", "actor_loss", "critic_loss", "target_q_mean")}
    record: list = []
    actor.train()
    critic.train()
    with recorded_clipping(record):
        trainer.train_step(None, metrics)
    after = neutral(params, names)
    target = neutral({f"critic.{k}": v for k, v in trainer.critic_target.named_parameters()}, critic_names())
    after.update({name.replace("critic.", "critic_target.", 1): value for name, value in target.items()})
    return {"weights_before": before, "losses": {key: values[0] for key, values in metrics.items()},
            "grad_norms": norms_from_record(record, params, names), "weights_after": after, "swap_draw": swap_draw}


@contextlib.contextmanager
def cuda_moves_ignored():
    """LSDT.py moves its convolution `.to('cuda')` in the constructor; on a CPU machine that move is skipped."""
    original = nn.Module.to

    def to(self, *args, **kwargs):
        if args and str(args[0]).startswith("cuda"):
            return self
        return original(self, *args, **kwargs)

    nn.Module.to = to
    try:
        yield
    finally:
        nn.Module.to = original


def run_lsdt(cfg: dict, batch: dict, generator: torch.Generator) -> dict:
    lsdt = importlib.import_module("decision_transformer.LSDT")
    x = reference_inputs(batch)
    with cuda_moves_ignored():
        model = lsdt.DecisionTransformer(state_dim=x["states"].shape[-1], act_dim=cfg["action_dim"],
                                         n_blocks=cfg["n_layers"], h_dim=cfg["embed_dim"],
                                         context_len=cfg["context_len"], n_heads=cfg["n_heads"], drop_p=0.0,
                                         kernelsize=cfg["kernel_size"], convdim=cfg["conv_dim"],
                                         max_timestep=cfg["max_episode_length"])
    for block in model.transformer:  # dropout 0 where LSDT.py fixes it: dk = 0.1, DynamicConvolution 0.2
        block.attention.att_drop.p = 0.0
        block.attention.Dynamicconv_layer.dropout_rate = 0.0
    perturb(model, generator)
    names = lsdt_names(cfg["n_layers"])
    params = dict(model.named_parameters())
    before = neutral(params, names)
    # scripts/train.py: AdamW, masked F.mse_loss, clip 0.25, LambdaLR(create_combined_lambda(warmup, total)), whose
    # first step runs at (0 + 1) / warmup (train.py imports gym and d4rl, so its lambda is not imported).
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / cfg["warmup_steps"]))
    model.train()
    _, action_preds, _ = model.forward(timesteps=x["timesteps"], states=x["states"], actions=x["actions"],
                                       returns_to_go=x["rtg"][:, :-1])
    keep = x["mask"].view(-1) > 0
    loss = nn.functional.mse_loss(action_preds.view(-1, cfg["action_dim"])[keep],
                                  x["actions"].view(-1, cfg["action_dim"])[keep], reduction="mean")
    optimizer.zero_grad()
    loss.backward()
    norms = grad_norms(params, names)
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    optimizer.step()
    scheduler.step()
    return {"weights_before": before, "losses": {"loss": loss.item()}, "grad_norms": norms,
            "weights_after": neutral(params, names)}


RUNS = {"dt": (run_dt, "gym"), "qt": (run_qt, "."), "lsdt": (run_lsdt, ".")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=sorted(RUNS))
    parser.add_argument("--reference", type=Path, required=True, help="checkout or export of the method's repository")
    parser.add_argument("--commit", default=None, help="the reference commit (default: `git rev-parse HEAD` there)")
    parser.add_argument("--out", type=Path, default=None, help="default tests/fixtures/reference/<method>.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run, package_root = RUNS[args.method]
    root = args.reference / package_root
    if not (root / "decision_transformer").is_dir():
        raise UserError(f"{root} has no decision_transformer/ package", f"pass the {args.method} repository's root")
    sys.path.insert(0, str(root))
    commit = args.commit or subprocess.run(["git", "-C", str(args.reference), "rev-parse", "HEAD"],
                                           capture_output=True, text=True).stdout.strip() or "unknown"
    torch.manual_seed(args.seed)
    cfg = settings(args.method)
    batch = fixed_batch(cfg, np.random.default_rng(args.seed))
    result = run(cfg, batch, torch.Generator().manual_seed(args.seed))
    fixture = {"method": args.method, "reference_commit": commit, "config": cfg, "perturb": PERTURB,
               "batch": {key: float32_list(value) if value.dtype == np.float32 else value.tolist()
                         for key, value in batch.items()}, **result}
    out = args.out or REPO_ROOT / "tests" / "fixtures" / "reference" / f"{args.method}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, separators=(",", ":")))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB): losses {result['losses']}")


if __name__ == "__main__":
    cli_main(main)
