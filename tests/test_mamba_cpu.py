"""The fused C kernels for the CPU (qhyer/models/mamba_cpu.py): the scan and the pure-PyTorch scan it replaces in
float32 both equal the sequential definition in the output and all six gradients; the conv + SiLU and the masked
softplus equal Mamba's PyTorch code; `selective_scan` and `Mamba` pick the kernels on the CPU in float32, keep
PyTorch otherwise, and fall back silently when no C compiler is there."""

from __future__ import annotations

import tempfile

import pytest
import torch
import torch.nn.functional as F
from test_scan import scan_inputs, tiny_mamba

from qhyer.models import mamba_cpu, scan
from qhyer.models.scan import SelectiveScan, selective_scan, selective_scan_reference

needs_compiler = pytest.mark.skipif(mamba_cpu.library() is None, reason="no C compiler to build the kernels")
TOLERANCE = dict(atol=1e-5, rtol=1e-5)  # float32, as tests/test_scan.py
# Against the float64 definition, a float32 scan may be off by at most this many times the float32 definition's own
# error (plus 1e-6 of the largest value): large Δ make some gradients ill-conditioned, so two float32 scans can differ
# by 1e-4 relative on single elements while both are as close to the exact value as float32 allows.
ERROR_RATIO = 4.0


def assert_matches_reference(scan_fn, inputs: list[torch.Tensor], reference=selective_scan_reference) -> None:
    """Output and gradients of `scan_fn` (float32) as close to the float64 definition as the float32 definition is."""
    grad_out = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(1))
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]

    def output_and_grads(fn, args, grad):
        y = fn(*args)
        return [y, *torch.autograd.grad(y, args, grad)]

    ours = output_and_grads(scan_fn, inputs, grad_out)
    ref32 = output_and_grads(reference, inputs, grad_out)
    exact = output_and_grads(reference, inputs64, grad_out.double())
    names = ("y", "x", "delta", "A", "B", "C", "D", "z")[:len(ours)]           # output, then one grad per input
    for name, o, r, e in zip(names, ours, ref32, exact, strict=True):
        assert torch.isfinite(o).all(), name
        err, ref_err = (o.double() - e).abs().max(), (r.double() - e).abs().max()
        assert err <= ERROR_RATIO * ref_err + 1e-6 * e.abs().max(), (name, err.item(), ref_err.item())
        torch.testing.assert_close(o.double(), e, atol=1e-4, rtol=1e-4)


@needs_compiler
@pytest.mark.parametrize("length", [1, 2, 7, 61, 100])
@pytest.mark.parametrize("large_delta", [False, True])
@pytest.mark.parametrize("d_inner, d_state", [(8, 4), (5, 4), (19, 3), (16, 16)])  # whole and partial 8-channel blocks
def test_fused_scan_equals_sequential_reference(length, large_delta, d_inner, d_state):
    inputs = scan_inputs(3, length, d_inner, d_state, large_delta, seed=length)
    assert_matches_reference(mamba_cpu.FusedCpuScan.apply, inputs)


@needs_compiler
@pytest.mark.parametrize("length, d_inner", [(1, 8), (17, 13)])
def test_fused_gated_scan_equals_reference_times_silu(length, d_inner):
    """The gate of Mamba's output, y ⊙ SiLU(z), in the same pass; z a strided view as in Mamba.forward."""
    inputs = [t.detach() for t in scan_inputs(2, length, d_inner, 4, large_delta=False, seed=length)]
    xz = torch.randn(2, length, 2 * d_inner, generator=torch.Generator().manual_seed(5))
    assert_matches_reference(mamba_cpu.FusedCpuScan.apply, [t.requires_grad_() for t in (*inputs, xz[..., d_inner:])],
                             lambda *args: selective_scan_reference(*args[:6]) * F.silu(args[6]))


@needs_compiler
def test_fused_scan_of_an_empty_sequence():
    inputs = scan_inputs(2, 0, 11, 4, large_delta=False)
    y = mamba_cpu.FusedCpuScan.apply(*inputs)
    grads = torch.autograd.grad(y.sum(), inputs)
    assert y.shape == (2, 0, 11) and all((g == 0).all() for g in grads)


@needs_compiler
def test_fused_scan_takes_padding_and_strided_inputs():
    x, delta, A, B, C, D = (t.detach() for t in scan_inputs(2, 12, 11, 4, large_delta=False))
    delta[0, :5] = 0.0                                             # left padding as Mamba.forward sets it: Ā = 1
    strided = [x.mT.contiguous().mT, delta, A.t().contiguous().t(), B, C[..., ::1], D]   # transposed memory layouts
    assert not strided[0].is_contiguous() and not strided[2].is_contiguous()
    assert_matches_reference(mamba_cpu.FusedCpuScan.apply, [t.requires_grad_() for t in strided])


@pytest.mark.parametrize("length", [1, 16, 61])
@pytest.mark.parametrize("large_delta", [False, True])
@pytest.mark.parametrize("block_steps", [1, 3, 1000])  # time blocks of 1 and 3 steps carry h and g across blocks
def test_pytorch_scan_equals_sequential_reference(length, large_delta, block_steps, monkeypatch):
    """The PyTorch scan still runs in float64, on CUDA without mamba-ssm and Triton, and without a C compiler."""
    monkeypatch.setattr(scan, "BLOCK_ELEMENTS", block_steps * 3 * 5 * 4)  # steps × (b, d, N)
    assert_matches_reference(SelectiveScan.apply, scan_inputs(3, length, 5, 4, large_delta, seed=length))


@needs_compiler
def test_dispatch_uses_the_fused_scan_in_float32_only(monkeypatch):
    calls = []
    monkeypatch.setattr(mamba_cpu, "fused_scan", lambda *inputs: calls.append(len(inputs)) or inputs[0])
    selective_scan(*scan_inputs(2, 5, 8, 4, large_delta=False))
    assert calls == [7]  # x, delta, A, B, C, D and the gate z (None here)
    selective_scan(*[t.detach().double() for t in scan_inputs(2, 5, 8, 4, large_delta=False)])
    assert calls == [7]                                          # float64: not called again


def test_missing_compiler_falls_back_to_the_pytorch_scan(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built in either cache yet
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mamba_cpu.library.cache_clear()
    try:
        assert mamba_cpu.library() is None
        inputs = scan_inputs(2, 9, 6, 3, large_delta=False)
        assert not mamba_cpu.supports(*inputs)
        torch.testing.assert_close(selective_scan(*inputs), selective_scan_reference(*inputs), **TOLERANCE)
    finally:
        mamba_cpu.library.cache_clear()


@needs_compiler
def test_which_kernels_ran_is_part_of_the_provenance(monkeypatch):
    """Runs record which CPU kernels they used (they change numbers within float32 rounding), and
    QHYER_CPU_KERNELS=pytorch selects PyTorch's, e.g. to reproduce numbers made without a C compiler."""
    from qhyer.runs import checkout_provenance

    mamba_cpu.library.cache_clear()
    try:
        assert checkout_provenance()["versions"].split()[-1].startswith("mamba_cpu=fused-c(-O3")
        monkeypatch.setenv("QHYER_CPU_KERNELS", "pytorch")
        mamba_cpu.library.cache_clear()
        assert not mamba_cpu.supports(*scan_inputs(2, 9, 6, 3, large_delta=False))
        assert checkout_provenance()["versions"].split()[-1] == "mamba_cpu=pytorch"
    finally:
        mamba_cpu.library.cache_clear()


@needs_compiler
def test_mamba_with_the_fused_scan_equals_the_pytorch_scan(monkeypatch):
    mamba, u = tiny_mamba(2), torch.randn(3, 13, 8, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(3, 13, dtype=torch.bool)
    mask[1, :6] = False

    def output_and_grads():
        out, _ = mamba(u, mask)
        return [out, *torch.autograd.grad(out.square().sum(), list(mamba.parameters()))]

    fused = output_and_grads()
    monkeypatch.setattr(mamba_cpu, "supports", lambda *tensors: False)
    for ours, pytorch in zip(fused, output_and_grads(), strict=True):
        torch.testing.assert_close(ours, pytorch, **TOLERANCE)


@needs_compiler
@pytest.mark.parametrize("length, d_inner", [(1, 8), (3, 13), (60, 16)])  # shorter than the kernel; partial block
def test_fused_conv_silu_equals_pytorch_conv(length, d_inner):
    g = torch.Generator().manual_seed(length)
    conv = torch.nn.Conv1d(d_inner, d_inner, 4, groups=d_inner, padding=3)
    xz = torch.randn(2, length, 2 * d_inner, generator=g, requires_grad=True)
    x = xz[..., :d_inner]                                           # a strided view, as in Mamba.forward
    grad_out = torch.randn(2, length, d_inner, generator=g)
    params = [xz, conv.weight, conv.bias]
    fused = mamba_cpu.FusedCausalConvSiLU.apply(x, conv.weight, conv.bias)
    pytorch = F.silu(conv(x.mT)[..., :length].mT)
    torch.testing.assert_close(fused, pytorch, **TOLERANCE)
    for ours, ref in zip(torch.autograd.grad(fused, params, grad_out), torch.autograd.grad(pytorch, params, grad_out),
                         strict=True):
        torch.testing.assert_close(ours, ref, **TOLERANCE)


@needs_compiler
def test_fused_softplus_mask_equals_pytorch():
    """Across torch's threshold (20), for very negative inputs, and with padded rows (mask False: Δ = 0)."""
    raw = torch.cat([torch.linspace(-100, 40, 2 * 3 * 11 - 4), torch.tensor([20.0, 20.001, 19.999, 0.0])])
    raw = raw[torch.randperm(raw.numel(), generator=torch.Generator().manual_seed(0))].view(2, 3, 11).requires_grad_()
    mask = torch.tensor([[True, False, True], [False, True, True]])
    grad_out = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(1))
    for m in (mask, None):
        fused = mamba_cpu.FusedSoftplusMask.apply(raw, m)
        pytorch = F.softplus(raw) * (1 if m is None else m[..., None])
        torch.testing.assert_close(fused, pytorch, atol=1e-7, rtol=2e-7)
        torch.testing.assert_close(torch.autograd.grad(fused, raw, grad_out)[0],
                                   torch.autograd.grad(pytorch, raw, grad_out)[0], atol=1e-7, rtol=2e-7)
