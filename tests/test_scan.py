"""The chunked selective scan and the Mamba mixer: equal to the sequential definition in values and gradients,
stable for large Δ, step mode equal to the parallel forward, padding invisible, CUDA kernel optional."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from qhyer.models import scan
from qhyer.models.mamba import Mamba
from qhyer.models.scan import selective_scan, selective_scan_reference


def scan_inputs(b: int, length: int, d: int, n: int, large_delta: bool, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, d, generator=g)
    pre = torch.randn(b, length, d, generator=g)
    # large: Δ of 3-10 and, for 1 in 6 entries, 30-100: ΔA reaches −1000, where Ā = exp(ΔA) is exactly 0 in float32
    delta = F.softplus(3 * pre + 3) * (1 + 9 * (pre > 1)) if large_delta else F.softplus(pre - 2)
    A = -torch.exp(torch.randn(d, n, generator=g).abs().log1p() + torch.log(torch.arange(1.0, n + 1)))
    B, C = torch.randn(b, length, n, generator=g), torch.randn(b, length, n, generator=g)
    D = torch.randn(d, generator=g)
    return [t.requires_grad_() for t in (x, delta, A, B, C, D)]


@pytest.mark.parametrize("length", [1, 2, 7, 16, 61, 100])
@pytest.mark.parametrize("large_delta", [False, True])
@pytest.mark.parametrize("block_steps", [1, 3, 1000])  # time blocks of 1 and 3 steps carry h and g across blocks
def test_chunked_scan_equals_sequential_reference(length, large_delta, block_steps, monkeypatch):
    monkeypatch.setattr(scan, "BLOCK_ELEMENTS", block_steps * 3 * 5 * 4)  # steps × (b, d, N)
    inputs = scan_inputs(3, length, 5, 4, large_delta, seed=length)
    _, delta, A = inputs[:3]
    if large_delta and length > 2:
        assert (torch.exp(delta[..., None] * A) == 0).any()  # the regime where dividing by cumprod(Ā) fails
    ours, ref = selective_scan(*inputs), selective_scan_reference(*inputs)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    grad_out = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    for g_ours, g_ref in zip(torch.autograd.grad(ours, inputs, grad_out), torch.autograd.grad(ref, inputs, grad_out),
                             strict=True):
        assert torch.isfinite(g_ours).all()
        torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=1e-5)


def test_scan_is_exact_in_float64():
    inputs = [t.detach().double().requires_grad_() for t in scan_inputs(2, 45, 3, 3, large_delta=False)]
    ours, ref = selective_scan(*inputs), selective_scan_reference(*inputs)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-12)
    for g_ours, g_ref in zip(torch.autograd.grad(ours.sum(), inputs), torch.autograd.grad(ref.sum(), inputs),
                             strict=True):
        torch.testing.assert_close(g_ours, g_ref, atol=1e-12, rtol=1e-12)


def test_missing_mamba_ssm_falls_back_silently(monkeypatch):
    scan._cuda_selective_scan.cache_clear()
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)  # `import mamba_ssm...` now raises ImportError
    try:
        assert scan._cuda_selective_scan() is None
    finally:
        scan._cuda_selective_scan.cache_clear()


def tiny_mamba(seed: int = 0) -> Mamba:
    torch.manual_seed(seed)
    mamba = Mamba(8, d_state=4, d_conv=4, expand=2)
    with torch.no_grad():  # larger, more varied steps than the init so the state really decays and mixes
        mamba.dt_proj.bias.add_(torch.randn_like(mamba.dt_proj.bias) + 2.0)
    return mamba.eval()


def test_mamba_step_mode_equals_parallel_forward():
    mamba = tiny_mamba()
    u = torch.randn(3, 11, 8)
    parallel, _ = mamba(u)
    state, outputs = mamba.initial_state(3), []
    for t in range(u.shape[1]):
        out, state = mamba.step(u[:, t], state)
        outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, 1), parallel, atol=1e-5, rtol=1e-5)
    assert state[0].shape == (3, 16, 4) and state[1].shape == (3, 16, 4)  # constant-size state


def test_mamba_ignores_left_padding():
    mamba = tiny_mamba(1)
    u = torch.randn(2, 9, 8)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :4] = False
    padded = u.clone()
    padded[0, :4] = 100.0  # garbage in padded slots must not leak into real tokens
    out, delta = mamba(padded, mask)
    alone, _ = mamba(u[:1, 4:])
    torch.testing.assert_close(out[0, 4:], alone[0], atol=1e-5, rtol=1e-5)
    assert (delta[0, :4] == 0).all()
