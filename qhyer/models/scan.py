"""Selective scan of Mamba-1 (Gu & Dao, arXiv 2312.00752, Algorithm 2):

    h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t,    y_t = C_t · h_t + D ⊙ x_t,    h_{−1} = 0,

per channel d (A diagonal, (d_inner, N)); B_t, C_t are input-dependent N-vectors shared by the channels.

Three entry points with one meaning:
  * `selective_scan`: the whole sequence. On CUDA it uses mamba-ssm's fused kernel when that package imports
    (`mamba_ssm/ops/selective_scan_interface.py`, `selective_scan_fn`), else our Triton kernel
    (`qhyer/models/scan_triton.py`) when Triton imports; on the CPU in float32 our fused C kernel
    (`qhyer/models/mamba_cpu.py`, compiled on first use) when a C compiler is there; everywhere else our chunked
    pure-PyTorch scan with a hand-written backward (`SelectiveScan`), cut into cache-sized time blocks.
  * `selective_step`: one step of the recurrence on a (B, d_inner, N) state (evaluation-time step mode).
  * `selective_scan_reference`: `selective_step` looped over time, the plain sequential definition that the tests
    and `benchmarks/bench_qhyer.py` compare against.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from qhyer.models import mamba_cpu


def selective_step(h: torch.Tensor, x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h (b, d, N); x, delta (b, d); A (d, N); B, C (b, N); D (d) → y (b, d), new h."""
    h = torch.exp(delta[..., None] * A) * h + (delta * x)[..., None] * B[:, None, :]
    return (h @ C[..., None]).squeeze(-1) + D * x, h


def selective_scan_reference(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                             C: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Sequential definition: x, delta (b, L, d); B, C (b, L, N) → y (b, L, d). One Python step per time step."""
    h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    ys = []
    for x_t, delta_t, B_t, C_t in zip(x.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1), strict=True):
        y_t, h = selective_step(h, x_t, delta_t, A, B_t, C_t, D)
        ys.append(y_t)
    return torch.stack(ys, 1)


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """x, delta (b, L, d), delta > 0 (softplus already applied); A (d, N) < 0; B, C (b, L, N); D (d) → y (b, L, d),
    or y ⊙ SiLU(z) with Mamba's output gate z (b, L, d) (the fused CPU kernel applies it in the same pass).

    Under autocast (train.precision=bf16) the scan is a float32 island, as mamba-ssm's kernels compute in float32
    whatever their input dtype: the state multiplies L decays, which bfloat16's 8-bit mantissa would compound."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return selective_scan(*(v.float() for v in (x, delta, A, B, C, D)), z=None if z is None else z.float())
    if x.is_cuda:
        fused, triton_scan = _cuda_selective_scan(), _triton_selective_scan()
        if fused is not None:  # kernel layout: (b, d, L) and (b, N, L)
            y = fused(x.mT.contiguous(), delta.mT.contiguous(), A.contiguous(), B.mT.contiguous(),
                      C.mT.contiguous(), D.float()).mT
        elif triton_scan is not None:
            y = triton_scan(x, delta, A, B, C, D)
        else:
            y = SelectiveScan.apply(x, delta, A, B, C, D)
    elif mamba_cpu.supports(x, delta, A, B, C, D, *([] if z is None else [z])):
        return mamba_cpu.fused_scan(x, delta, A, B, C, D, z)
    else:
        y = SelectiveScan.apply(x, delta, A, B, C, D)
    return y if z is None else y * F.silu(z)


@functools.cache
def _cuda_selective_scan():
    """mamba-ssm's fused CUDA scan, or None when mamba-ssm (or its compiled extension) is not installed. Released
    mamba-ssm imports its CUDA extension at import time, so any import failure means "not available"."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or OSError/RuntimeError from a broken compiled extension
        return None
    return selective_scan_fn


@functools.cache
def _triton_selective_scan():
    """Our Triton scan, or None when Triton does not import (it is an optional, Linux-only dependency)."""
    try:
        from qhyer.models.scan_triton import selective_scan_triton
    except ImportError:
        return None
    return selective_scan_triton


def _chunked_scan_(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> None:
    """In place along dim 0: b[t] ← a[t] · b[t−1] + b[t] with b[−1] = 0, or, with `reverse`, b[t] ← a[t] · b[t+1] + b[t]
    with b[L] = 0. `a` (decays in (0, 1]) is overwritten; its first entry in scan order is never read.

    Two-level chunked scan with T = ⌊√L⌋ steps per chunk: (1) the recurrence runs inside all chunks at once (chunks
    are a batch dimension) while `a` becomes the cumulative decay since each chunk's start; (2) one pass over the
    chunks adds the carried-in state times that cumulative decay. That is ~3√L tensor ops instead of L, the same
    O(L) work as the sequential loop, and only products of numbers in (0, 1], so no overflow for any Δ and no
    division by vanishing cumulative products (the failure mode of the cumsum(b / cumprod(a)) shortcut).
    """
    length = a.shape[0]
    T = max(1, math.isqrt(length))
    rest = length % T                                   # steps outside whole chunks: scanned last, one by one
    whole = slice(rest, length) if reverse else slice(0, length - rest)
    av, bv = a[whole].unflatten(0, (-1, T)), b[whole].unflatten(0, (-1, T))   # (L // T, T, ...) views
    back = 1 if reverse else -1                         # offset of the preceding step in scan order
    for t in range(T - 2, -1, -1) if reverse else range(1, T):
        bv[:, t].addcmul_(av[:, t], bv[:, t + back])
        av[:, t].mul_(av[:, t + back])
    last = 0 if reverse else -1                         # a chunk's final step in scan order
    for c in range(bv.shape[0] - 2, -1, -1) if reverse else range(1, bv.shape[0]):
        bv[c].addcmul_(av[c], bv[c + back, last])
    for t in range(rest - 1, -1, -1) if reverse else range(length - rest, length):
        b[t].addcmul_(a[t], b[t + back])


# Elements of one time block of the (L, b, N, d) state: 2**18 float32 = 1 MiB, a core's L2 cache on the machines we
# measured, so a block's tensors stay in cache and come from malloc's free lists. Whole-sequence (L, b, N, d) tensors
# (63 MiB at L = 60, b = 64, N = 16, d = 256) are fresh mmaps on every call whose page faults alone cost more than the
# scan. Fastest of 2**16 … 2**20 at every shape of benchmarks/bench_qhyer.py (2**20: up to 1.5× slower). At the
# default training shape one step's state is 1 MiB, so blocks are single steps there: Python's per-step cost is
# negligible next to a 1 MiB operation, and chunking would only add passes over memory.
BLOCK_ELEMENTS = 2**18


def _time_blocks(length: int, per_step: int) -> list[tuple[int, int]]:
    """[start, end) time ranges of BLOCK_ELEMENTS / per_step steps each (at least one step)."""
    steps = max(1, BLOCK_ELEMENTS // per_step)
    return [(start, min(start + steps, length)) for start in range(0, length, steps)]


def _block_states(x, delta, A_t, B, start, end, h_entry):
    """h_t for t in [start, end) given h_{start−1} = h_entry (b, N, d); time-major inputs, A_t = Aᵀ (N, d)."""
    a = torch.mul(delta[start:end, :, None], A_t).exp_()                        # Ā_t: (T, b, N, d)
    h = torch.mul(B[start:end, ..., None], (delta[start:end] * x[start:end])[:, :, None])  # Δ_t x_t B_t
    h[0].addcmul_(a[0], h_entry)
    _chunked_scan_(a, h)
    return h


class SelectiveScan(torch.autograd.Function):
    """`selective_scan` on CPU without the fused C kernel (float64, or no C compiler), and on CUDA without mamba-ssm
    and Triton. Time is cut into blocks of a few MiB; each
    block runs the chunked scan from the state carried in, and its states h_t are kept for backward, which walks the
    blocks in reverse. Every (T, b, N, d) tensor is block-sized, so none of them is a fresh mmap (see BLOCK_ELEMENTS).

    Layout is time-major and state-major, (T, b, N, d): every time slice is contiguous for the scan, and d, the widest
    axis, is innermost, so the outer products Δ_t ⊗ A and B_t ⊗ (Δ_t x_t) are long vectorised loops.

    Backward is the adjoint recurrence, run backwards in time with the same chunked scan:
        g_t = C_t ⊗ ∂y_t + exp(Δ_{t+1} A) ⊙ g_{t+1}                   (g_t = ∂L/∂h_t)
        ∂L/∂(Δ_t A) = g_t ⊙ exp(Δ_t A) ⊙ h_{t−1} = g_t ⊙ (h_t − Δ_t x_t B_t),   ∂L/∂(Δ_t x_t B_t) = g_t,
    then the chain rule through Δ_t A and (Δ_t x_t) ⊗ B_t.
    """

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D):
        x, delta, B, C = (v.transpose(0, 1).contiguous() for v in (x, delta, B, C))  # (L, b, d) and (L, b, N)
        A_t = A.t().contiguous()                                                # (N, d)
        ranges = _time_blocks(x.shape[0], x.shape[1] * A_t.numel())
        y = torch.addcmul(torch.zeros_like(x), D, x)                            # (L, b, d): D x_t, plus C_t · h_t below
        blocks, h_entry = [], x.new_zeros(x.shape[1], *A_t.shape)               # h_{−1} = 0: (b, N, d)
        for start, end in ranges:
            h = _block_states(x, delta, A_t, B, start, end, h_entry)
            y[start:end] += (C[start:end, :, None] @ h).squeeze(-2)
            blocks.append(h)
            h_entry = h[-1]
        ctx.ranges, ctx.blocks = ranges, blocks   # per-block h_t: intermediates, kept on ctx (not inputs or outputs)
        ctx.save_for_backward(x, delta, A_t, B, C, D)
        return y.transpose(0, 1)                                                # (b, L, d)

    @staticmethod
    def backward(ctx, grad_y):
        x, delta, A_t, B, C, D = ctx.saved_tensors
        length = x.shape[0]
        gy = grad_y.transpose(0, 1).contiguous()                                # (L, b, d)
        grad_x, grad_delta, grad_B, grad_C = (torch.empty_like(v) for v in (x, delta, B, C))
        grad_A = torch.zeros_like(A_t)
        g_after = None                                                          # g_end of the block after this one
        for (start, end), h in zip(reversed(ctx.ranges), reversed(ctx.blocks), strict=True):
            u = delta[start:end] * x[start:end]                                 # (T, b, d)
            g = torch.mul(C[start:end, ..., None], gy[start:end, :, None])      # (T, b, N, d), becomes g_t
            # the decay applied at step t is Ā_{t+1}; the block's last one carries g in from the next block
            decay = torch.empty_like(g)
            torch.mul(delta[start + 1:end + 1, :, None], A_t, out=decay[:length - start - 1]).exp_()
            decay[length - start - 1:] = 1                                      # after the last step: never read
            if g_after is not None:
                g[-1].addcmul_(decay[-1], g_after)
            _chunked_scan_(decay, g, reverse=True)
            g_after = g[0]
            grad_C[start:end] = torch.mul(h, gy[start:end, :, None]).sum(-1)      # Σ_d ∂y_t h_t (bmm: 5× slower)
            grad_u = (B[start:end, :, None] @ g).squeeze(-2)                    # Σ_N g_t B_t
            grad_B[start:end] = torch.mul(g, u[:, :, None]).sum(-1)              # Σ_d g_t u_t
            grad_dA = torch.mul(B[start:end, ..., None], u[:, :, None], out=decay)   # g_t ⊙ Ā_t ⊙ h_{t−1}
            torch.sub(h, grad_dA, out=grad_dA).mul_(g)
            grad_delta[start:end] = grad_u * x[start:end] + (grad_dA * A_t).sum(2)
            grad_A += grad_dA.mul_(delta[start:end, :, None]).sum((0, 1))
            grad_x[start:end] = grad_u * delta[start:end]
        grad_x.addcmul_(gy, D)
        grad_D = (gy * x).sum((0, 1))
        return (grad_x.transpose(0, 1), grad_delta.transpose(0, 1), grad_A.t(), grad_B.transpose(0, 1),
                grad_C.transpose(0, 1), grad_D)
