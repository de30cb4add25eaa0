"""The Triton selective scan (qhyer/models/scan_triton.py) equals the CPU scan in its output and all six gradients.

CPU (CI): through Triton's interpreter, in a child process that sets TRITON_INTERPRET=1 before importing triton (the
flag is read when a kernel is decorated, so it cannot be switched on in a process that may already hold compiled
kernels). Lengths include 1 and non-powers of two; two channel blocks carry the cross-block sums of ∂B, ∂C; odd
d_inner and N exercise the masks; left padding (Δ = 0) and Δ large enough that Ā is exactly 0.
CUDA (marked `cuda`, run by benchmarks/device_check.sh): the compiled kernel against the CPU scan, the dispatch, and
one QHyer hybrid training step on CUDA against the same step on CPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from test_qhyer import make_agent, random_walks, tiny_config
from test_scan import scan_inputs

from qhyer.models import scan
from qhyer.models.scan import SelectiveScan

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (Linux: pip install -e '.[dev]')")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOLERANCE = dict(atol=1e-4, rtol=1e-4)  # float32, CPU scan vs Triton scan (issue 13)
GRAD_NAMES = ("x", "delta", "A", "B", "C", "D")

# name → (batch, length, d_inner, N, block_d, variant)
CASES = {
    **{f"L{length}": (2, length, 8, 4, 4, "plain") for length in (1, 2, 7, 16, 33, 60)},
    "odd_sizes": (2, 13, 6, 3, 4, "plain"),         # masked channels in the second block, masked state column
    "large_delta": (2, 17, 8, 4, 4, "large"),       # Ā = exp(ΔA) underflows to exactly 0
    "left_padded": (2, 12, 8, 4, 8, "padded"),      # Δ = 0 on padding, as Mamba.forward sets it
    "strided": (2, 9, 4, 4, 16, "strided"),         # non-contiguous inputs, one partial channel block
}

CHILD = """
import sys
import torch
from qhyer.models.scan_triton import selective_scan_triton
cases = torch.load(sys.argv[1])
results = {}
for name, case in cases.items():
    inputs = [t.requires_grad_() for t in case["inputs"]]
    y = selective_scan_triton(*inputs, block_d=case["block_d"])
    grads = torch.autograd.grad(y, inputs, case["grad_out"])
    with torch.no_grad():  # the forward that stores no states
        y_no_grad = selective_scan_triton(*inputs, block_d=case["block_d"])
    results[name] = {"y": y.detach(), "grads": grads, "y_no_grad": y_no_grad}
torch.save(results, sys.argv[2])
"""


def case_inputs(batch: int, length: int, d_inner: int, d_state: int, variant: str) -> list[torch.Tensor]:
    inputs = [t.detach() for t in scan_inputs(batch, length, d_inner, d_state, variant == "large", seed=length)]
    x, delta = inputs[:2]
    if variant == "padded":  # row 0 left-padded by 5 steps: garbage input, Δ = 0
        x[0, :5], delta[0, :5] = 100.0, 0.0
    if variant == "strided":
        inputs[0], inputs[3] = x.mT.contiguous().mT, inputs[3].mT.contiguous().mT
        assert not inputs[0].is_contiguous()
    return inputs


def cpu_scan(inputs: list[torch.Tensor], grad_out: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    inputs = [t.detach().cpu().requires_grad_() for t in inputs]
    y = SelectiveScan.apply(*inputs)
    return y.detach(), torch.autograd.grad(y, inputs, grad_out.cpu())


def assert_matches_cpu_scan(inputs, grad_out, y, grads, **tolerance) -> None:
    y_ref, grads_ref = cpu_scan(inputs, grad_out)
    torch.testing.assert_close(y.cpu(), y_ref, **tolerance, msg=lambda m: f"output: {m}")
    for name, grad, grad_ref in zip(GRAD_NAMES, grads, grads_ref, strict=True):
        torch.testing.assert_close(grad.cpu(), grad_ref, **tolerance, msg=lambda m, name=name: f"∂{name}: {m}")


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """Every case run once through the interpreter in one child process (triton's import is the slow part)."""
    folder = tmp_path_factory.mktemp("triton_interpreter")
    cases = {}
    for name, (batch, length, d_inner, d_state, block_d, variant) in CASES.items():
        inputs = case_inputs(batch, length, d_inner, d_state, variant)
        grad_out = torch.randn(batch, length, d_inner, generator=torch.Generator().manual_seed(1))
        cases[name] = {"inputs": inputs, "grad_out": grad_out, "block_d": block_d}
    torch.save(cases, folder / "cases.pt")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(folder / "cases.pt"), str(folder / "results.pt")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    return cases, torch.load(folder / "results.pt")


@needs_triton
@pytest.mark.parametrize("name", list(CASES))
def test_interpreted_triton_scan_equals_cpu_scan(interpreted, name):
    cases, results = interpreted
    case, result = cases[name], results[name]
    assert_matches_cpu_scan(case["inputs"], case["grad_out"], result["y"], result["grads"], **TOLERANCE)
    torch.testing.assert_close(result["y_no_grad"], result["y"], atol=0, rtol=0)
    if name == "left_padded":  # padding is invisible: the state stays 0, so y = D x there
        x, D = case["inputs"][0], case["inputs"][5]
        torch.testing.assert_close(result["y"][0, :5], D * x[0, :5], **TOLERANCE)


@needs_triton
def test_dispatch_finds_triton_and_falls_back_without_it(monkeypatch):
    from qhyer.models.scan_triton import selective_scan_triton

    scan._triton_selective_scan.cache_clear()
    try:
        assert scan._triton_selective_scan() is selective_scan_triton
        scan._triton_selective_scan.cache_clear()
        monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
        monkeypatch.delitem(sys.modules, "qhyer.models.scan_triton")
        assert scan._triton_selective_scan() is None
    finally:
        scan._triton_selective_scan.cache_clear()


# --- CUDA (benchmarks/device_check.sh) ------------------------------------------------------------------------------
@pytest.mark.cuda
@needs_cuda
@needs_triton
@pytest.mark.parametrize("sizes", [(2, 61, 8, 4), (4, 60, 256, 16)])
def test_cuda_triton_scan_equals_cpu_scan(sizes):
    from qhyer.models.scan_triton import selective_scan_triton

    batch, length, d_inner, d_state = sizes
    inputs = [t.cuda().requires_grad_() for t in case_inputs(batch, length, d_inner, d_state, "plain")]
    grad_out = torch.randn(batch, length, d_inner, generator=torch.Generator().manual_seed(1)).cuda()
    y = selective_scan_triton(*inputs)
    assert_matches_cpu_scan(inputs, grad_out, y.detach(), torch.autograd.grad(y, inputs, grad_out), **TOLERANCE)


@pytest.mark.cuda
@needs_cuda
@needs_triton
def test_cuda_dispatch_uses_triton_without_mamba_ssm(monkeypatch):
    calls = []
    triton_scan = scan._triton_selective_scan()
    monkeypatch.setattr(scan, "_cuda_selective_scan", lambda: None)
    monkeypatch.setattr(scan, "_triton_selective_scan", lambda: lambda *a: calls.append(1) or triton_scan(*a))
    inputs = [t.cuda() for t in case_inputs(2, 5, 4, 4, "plain")]
    scan.selective_scan(*inputs)
    assert calls == [1]


@pytest.mark.cuda
@needs_cuda
def test_cuda_qhyer_hybrid_step_equals_cpu_step(monkeypatch):
    """One update of a tiny hybrid QHyer from the same weights on the same batch. No randomness in the step (dropout
    and goal noise 0); TF32 off. Tolerance: losses 1e-4 relative; each parameter's gradient within 1e-3 of its norm
    (summation order differs between devices); the loss after the optimizer step within 1e-3 relative."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cfg = tiny_config(backbone="hybrid", dropout=0.0, goal_noise=0.0)
    dataset = random_walks()
    agents = {device: make_agent(cfg, dataset).to(device) for device in ("cpu", "cuda")}
    batch = agents["cpu"].make_sampler(dataset, seed=0).sample(cfg.batch_size)
    metrics = {d: agent.update({k: v.to(d) for k, v in batch.items()}, 0) for d, agent in agents.items()}
    for key, value in metrics["cpu"].items():
        assert metrics["cuda"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    cpu_params = dict(agents["cpu"].named_parameters())
    for name, param in agents["cuda"].named_parameters():
        if param.grad is None:
            assert cpu_params[name].grad is None, name
            continue
        ref = cpu_params[name].grad
        assert (param.grad.cpu() - ref).norm() <= 1e-3 * ref.norm() + 1e-7, name
    with torch.no_grad():
        after = {d: agent.losses({k: v.to(d) for k, v in batch.items()})[0]["loss"].item()
                 for d, agent in agents.items()}
    assert after["cuda"] == pytest.approx(after["cpu"], rel=1e-3)
