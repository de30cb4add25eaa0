"""`train.precision=bf16` (bfloat16 autocast of each method's loss functions, qhyer.agent.Agent.wrap_loss_functions)
and `train.compile_mode=reduce-overhead` (torch.compile with CUDA graphs).

bf16 vs fp32, one update of every method from the same weights on the same batch (dropout and goal noise off, so the
step has no randomness beyond QT's role swap, seeded). bfloat16 keeps 8 mantissa bits (rounding 2^-9 ≈ 2e-3 per
operation); values and critics are float32 islands (Agent.float32_calls), so their losses match fp32 closely. Without
the islands HIQL's exp(β·advantage) weights amplified the value rounding to 1.8e-2 in its loss. Tolerances (worst
measured on CPU with the islands in brackets):
  * every logged metric within 1e-2 relative + 1e-4 absolute [7.7e-4, QT's Q loss];
  * the whole gradient (all parameters together) within 3e-2 of its norm [8.6e-3, LSDT];
  * every weight after the Adam step within 2·lr + 1e-6 of fp32's: Adam's first step moves a weight by at most lr,
    so this bound allows only the sign flips of near-zero gradients. Weights and Adam's state stay float32.
CPU here (torch's CPU autocast); the `cuda` tests repeat it on the GPU (CUDA autocast casts more ops to float32) and
check reduce-overhead (CUDA graphs) against eager over a few updates with tests/test_compile.py's tolerance.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
import yaml
from test_qhyer import random_walks

from qhyer.agent import DataInfo, dataset_family
from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.methods import METHODS, method_classes

# qhyer.trainer imports ogbench and gymnasium, which the GPU machine lacks (benchmarks/device_check.sh), so the tests
# that train import it (and tests/test_trainer.py) themselves: this module must import there for its cuda tests.

SPEC = get_spec("maze2d-umaze-v1")  # its family's defaults; the data are random walks
METRIC_RTOL, METRIC_ATOL, GRAD_RTOL = 1e-2, 1e-4, 3e-2
COMPILED_ATOL, COMPILED_RTOL = 1e-5, 1e-4  # tests/test_compile.py
SEQUENCE_SIZES = {"batch_size": 8, "context_len": 4, "embed_dim": 16, "n_layers": 1, "dropout": 0.0}
TINY = {"qhyer": {**SEQUENCE_SIZES, "n_heads": 2, "d_state": 4, "critic_hidden": 16, "flow_layers": 2,
                  "q_head_hidden": (16,), "goal_noise": 0.0},
        "dt": SEQUENCE_SIZES, "qt": {**SEQUENCE_SIZES, "n_heads": 2}, "lsdt": {**SEQUENCE_SIZES, "n_heads": 2,
                                                                                "conv_dim": 8, "attn_dropout": 0.0,
                                                                                "kernel_dropout": 0.0},
        **{m: {"batch_size": 8, "actor_hidden_dims": (16, 16)} for m in ("gcbc", "gciql", "hiql")}}
TINY["gciql"] = TINY["hiql"] = {**TINY["gcbc"], "value_hidden_dims": (16, 16)}
TINY["iql"] = {"batch_size": 8, "hidden_dims": (16, 16)}
# metrics computed by float32 islands alone from float32 inputs: identical under bf16
ISLAND_METRICS = {"gciql": ("value_loss", "critic_loss"), "hiql": ("value_loss",), "qt": ("q_mean",),
                  "qhyer": ("loss_critic", "loss_q")}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def walks():
    """Random walks with rewards on every fifth row: IQL trains on stored rewards, the others ignore them."""
    data = random_walks()
    return dataclasses.replace(data, rewards=(np.arange(len(data.observations)) % 5 == 0).astype(np.float32))


def tiny_agent(method: str, device: str = "cpu"):
    config_cls, agent_cls = method_classes(method)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {**TINY[method], **({"warmup_steps": 1} if "warmup_steps" in fields else {})}  # full lr at step 0
    cfg = config_cls(**overrides).for_family(dataset_family(SPEC)).for_budget(100)
    torch.manual_seed(0)
    return agent_cls(cfg, DataInfo.from_dataset(SPEC, walks(), cfg.goal_rep)).to(device)


def one_update(method: str, precision: str, device: str = "cpu"):
    """(metrics, gradients, weights after the step, largest lr) of one update from the seed-0 weights."""
    agent = tiny_agent(method, device)
    batch = agent.make_sampler(walks(), seed=0).sample(agent.cfg.batch_size)
    batch = {k: v.to(device) for k, v in batch.items()}
    agent.wrap_loss_functions(precision)
    random.seed(0)
    torch.manual_seed(1)
    metrics = agent.update(batch, 0)
    grads = {name: p.grad for name, p in agent.named_parameters() if p.grad is not None}
    lr = max(group["lr"] for opt in agent.optimizers.values() for group in opt.param_groups)
    for opt in agent.optimizers.values():
        for state in opt.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    return metrics, grads, dict(agent.named_parameters()), lr


def assert_bf16_matches_fp32(method: str, device: str) -> None:
    (metrics, grads, weights, lr), (bf16_metrics, bf16_grads, bf16_weights, _) = (
        one_update(method, precision, device) for precision in ("fp32", "bf16"))
    assert bf16_metrics.keys() == metrics.keys()
    for key, value in metrics.items():
        assert bf16_metrics[key] == pytest.approx(value, rel=METRIC_RTOL, abs=METRIC_ATOL), key
    assert bf16_metrics != metrics, "bf16 changed nothing: autocast did not run"
    for key in ISLAND_METRICS.get(method, ()):
        assert bf16_metrics[key] == metrics[key], key
    assert bf16_grads.keys() == grads.keys()
    difference = torch.stack([(bf16_grads[k] - g).pow(2).sum() for k, g in grads.items()]).sum().sqrt()
    norm = torch.stack([g.pow(2).sum() for g in grads.values()]).sum().sqrt()
    assert difference <= GRAD_RTOL * norm, f"gradient differs by {difference / norm:.3g} of its norm"
    for name, weight in weights.items():
        assert bf16_weights[name].dtype == torch.float32 and torch.isfinite(bf16_weights[name]).all(), name
        torch.testing.assert_close(bf16_weights[name], weight, atol=2 * lr + 1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_bf16_update_matches_fp32(method):
    assert_bf16_matches_fp32(method, "cpu")


def test_bad_values_are_one_config_error(tmp_path):
    from test_trainer import tiny_config

    from qhyer.run_folder import LoopConfig
    from qhyer.trainer import check_run_config

    cfg = tiny_config(tmp_path, "gcbc", steps=2)
    cases = {"precision": ("fp16", "train.precision must be one of fp32, bf16 (got 'fp16')"),
             "compile_mode": ("max-autotune", "train.compile_mode must be one of default, reduce-overhead")}
    for key, (value, message) in cases.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_run_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{key: value})))
    with pytest.raises(ConfigError, match="has no effect without train.compile=true"):
        check_run_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile_mode="reduce-overhead")))
    assert (LoopConfig().precision, LoopConfig().compile_mode) == ("fp32", "default")


def test_bf16_is_recorded_and_bound_to_the_checkpoint(tmp_path):
    """bf16 changes the weights, so a bf16 checkpoint does not resume as fp32; fp32 adds nothing to the identity,
    so checkpoints from before train.precision existed keep their hash."""
    from test_trainer import tiny_config

    from qhyer.run_folder import read_checkpoint
    from qhyer.trainer import train

    fp32 = tiny_config(tmp_path / "fp32", "gcbc", steps=2)
    assert "precision" not in read_checkpoint(train(fp32) / "checkpoints" / "last.pt")["config_identity"]
    cfg = tiny_config(tmp_path / "bf16", "gcbc", steps=2)
    run_dir = train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="bf16")))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["precision"] == "bf16"
    assert read_checkpoint(run_dir / "checkpoints" / "last.pt")["config_identity"]["precision"] == "bf16"
    with pytest.raises(ConfigError, match=r"differs in precision"):
        train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=3)))


@pytest.mark.slow
def test_compiled_bf16_equals_eager_bf16():
    """torch.compile traces the autocast context and GCIQL's float32 islands (instance-level forwards) into its graph:
    three compiled bf16 updates train what eager bf16 does, within the bf16 tolerances (inductor may keep a fused
    intermediate in float32 where eager rounds it to bfloat16)."""
    torch._dynamo.reset()
    results = []
    for compile_mode in (None, "default"):
        agent = tiny_agent("gciql")
        agent.wrap_loss_functions("bf16", compile_mode)
        batches = [agent.make_sampler(walks(), seed=s).sample(agent.cfg.batch_size) for s in range(3)]
        results.append(([agent.update(batch, step) for step, batch in enumerate(batches)], agent.state_dict()))
    (eager_metrics, eager_weights), (compiled_metrics, compiled_weights) = results
    for eager, compiled in zip(eager_metrics, compiled_metrics, strict=True):
        assert compiled == pytest.approx(eager, rel=METRIC_RTOL, abs=METRIC_ATOL)
    for key, value in eager_weights.items():
        torch.testing.assert_close(compiled_weights[key], value, atol=1e-4, rtol=METRIC_RTOL, msg=key)


# --- CUDA (benchmarks/device_check.sh) -------------------------------------------------------------------------------
@pytest.fixture
def no_tf32(monkeypatch):
    """float32 matmuls in float32 (TF32 rounds to 10 mantissa bits, which would dominate the compiled-vs-eager gap)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("method", METHODS)
def test_cuda_bf16_update_matches_fp32(method, no_tf32):
    assert_bf16_matches_fp32(method, "cuda")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("method", ["gcbc", "dt", "qt", "qhyer"])
def test_cuda_graphs_training_equals_eager(method, no_tf32):
    """Three updates under compile_mode=reduce-overhead (the third replays the recorded graphs) against eager; QT has
    two loss functions per update, QHyer runs the Triton scan inside the graph. No graph may be skipped."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    batches = [{k: v.cuda() for k, v in batch.items()}
               for batch in (tiny_agent(method).make_sampler(walks(), seed=s).sample(8) for s in range(3))]
    results = []
    for compile_mode in (None, "reduce-overhead"):
        agent = tiny_agent(method, "cuda")
        agent.wrap_loss_functions("fp32", compile_mode)
        random.seed(0)
        metrics = [agent.update(batch, step) for step, batch in enumerate(batches)]
        results.append((metrics, {k: v.detach().clone() for k, v in agent.state_dict().items()}))
    (eager_metrics, eager_weights), (graph_metrics, graph_weights) = results
    for eager, graphed in zip(eager_metrics, graph_metrics, strict=True):
        for key, value in eager.items():
            assert graphed[key] == pytest.approx(value, rel=COMPILED_RTOL, abs=COMPILED_ATOL), key
    for key, value in eager_weights.items():
        torch.testing.assert_close(graph_weights[key], value, atol=COMPILED_ATOL, rtol=COMPILED_RTOL, msg=key)
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] >= 1
    assert not counters["inductor"]["cudagraph_skips"], dict(counters["inductor"])
