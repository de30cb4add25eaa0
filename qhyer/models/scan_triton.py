"""Mamba-1's selective scan as a Triton kernel: the GPU path that needs no compiled extension.

Same meaning and layout as `qhyer.models.scan.selective_scan` (x, delta (b, L, d_inner); A (d_inner, N);
B, C (b, L, N); D (d_inner) → y (b, L, d_inner)); padded steps carry Δ = 0, so Ā = 1 and no input, with no special
case here. Each program owns one batch row and BLOCK_D channels, walks time sequentially and keeps its
(BLOCK_D, N) state in registers; programs run in parallel over batch × channel blocks. The arithmetic is float32
whatever the input dtype.

Backward is the adjoint recurrence run backwards in time (the same equations as `scan.SelectiveScan`):
    g_t = C_t ⊗ ∂y_t + Ā_{t+1} ⊙ g_{t+1},    ∂L/∂(Δ_t A) = g_t ⊙ Ā_t ⊙ h_{t−1},    ∂L/∂(Δ_t x_t B_t) = g_t.
States are STORED, not recomputed: when any input needs a gradient the forward kernel writes every h_t,
(b, L, d_inner, N) float32 (63 MiB at b 64, L 60, d_inner 256, N 16), and backward reads them back. Sequences here
are short (3 tokens × K = 20), so memory is cheap while recomputation would double the sequential forward walk.
Reductions over channels (∂B, ∂C) and over the batch (∂A, ∂D) are written as per-program partials and summed by
torch afterwards: deterministic, no atomics.

Reference for the forward/backward split and the state-in-registers layout: `state-spaces/mamba`
csrc/selective_scan/selective_scan_fwd_kernel.cuh and selective_scan_bwd_kernel.cuh (which chunk time and
recompute; this kernel is our own, simpler, sequential in time).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Assumption (not tuned on a GPU yet; benchmarks/bench_gpu.py times 8, 16 and 32): 16 channels per program gives
# b · d_inner / 16 = 1024 programs at the default training shape, several per SM of an H200, with a 16 × 16 state
# tile (one warp holds it in 8 registers per thread).
BLOCK_D = 16
NUM_WARPS = 1


@triton.jit
def _scan_forward_kernel(x_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, y_ptr, states_ptr,
                         length, d_inner, d_state,
                         BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, STORE_STATES: tl.constexpr):
    batch = tl.program_id(0).to(tl.int64)
    d_offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n_offs = tl.arange(0, BLOCK_N)
    d_mask, n_mask = d_offs < d_inner, n_offs < d_state
    dn_offs = d_offs[:, None] * d_state + n_offs[None, :]
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + dn_offs, mask=dn_mask, other=0.0).to(tl.float32)   # masked entries: Ā = 1, no input
    D = tl.load(D_ptr + d_offs, mask=d_mask, other=0.0).to(tl.float32)
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for t in range(length):
        row = batch * length + t                                          # (b, L) row of every input
        x = tl.load(x_ptr + row * d_inner + d_offs, mask=d_mask, other=0.0).to(tl.float32)
        dt = tl.load(delta_ptr + row * d_inner + d_offs, mask=d_mask, other=0.0).to(tl.float32)
        B = tl.load(B_ptr + row * d_state + n_offs, mask=n_mask, other=0.0).to(tl.float32)
        C = tl.load(C_ptr + row * d_state + n_offs, mask=n_mask, other=0.0).to(tl.float32)
        h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * B[None, :]
        y = tl.sum(h * C[None, :], axis=1) + D * x
        tl.store(y_ptr + row * d_inner + d_offs, y, mask=d_mask)
        if STORE_STATES:
            tl.store(states_ptr + row * d_inner * d_state + dn_offs, h, mask=dn_mask)


@triton.jit
def _scan_backward_kernel(x_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, states_ptr, grad_y_ptr,
                          grad_x_ptr, grad_delta_ptr, grad_A_part_ptr, grad_B_part_ptr, grad_C_part_ptr,
                          grad_D_part_ptr, length, d_inner, d_state,
                          BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    batch = tl.program_id(0).to(tl.int64)
    d_block = tl.program_id(1)
    d_offs = d_block * BLOCK_D + tl.arange(0, BLOCK_D)
    n_offs = tl.arange(0, BLOCK_N)
    d_mask, n_mask = d_offs < d_inner, n_offs < d_state
    dn_offs = d_offs[:, None] * d_state + n_offs[None, :]
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + dn_offs, mask=dn_mask, other=0.0).to(tl.float32)
    D = tl.load(D_ptr + d_offs, mask=d_mask, other=0.0).to(tl.float32)
    # per-(batch, channel block) rows of the (b, d_blocks, L, N) partials of ∂B and ∂C
    part_base = (batch * tl.num_programs(1) + d_block) * length
    g = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)                    # Ā_{t+1} ⊙ g_{t+1}; 0 after the end
    grad_A = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    grad_D = tl.zeros((BLOCK_D,), dtype=tl.float32)
    h = tl.load(states_ptr + (batch * length + length - 1) * d_inner * d_state + dn_offs, mask=dn_mask, other=0.0)
    for step in range(length):
        t = length - 1 - step
        row = batch * length + t
        x = tl.load(x_ptr + row * d_inner + d_offs, mask=d_mask, other=0.0).to(tl.float32)
        dt = tl.load(delta_ptr + row * d_inner + d_offs, mask=d_mask, other=0.0).to(tl.float32)
        gy = tl.load(grad_y_ptr + row * d_inner + d_offs, mask=d_mask, other=0.0).to(tl.float32)
        B = tl.load(B_ptr + row * d_state + n_offs, mask=n_mask, other=0.0).to(tl.float32)
        C = tl.load(C_ptr + row * d_state + n_offs, mask=n_mask, other=0.0).to(tl.float32)
        # h_{t−1}; h_{−1} = 0 (the address is clamped so no lane ever points before the buffer)
        h_prev = tl.load(states_ptr + (batch * length + tl.maximum(t - 1, 0)) * d_inner * d_state + dn_offs,
                         mask=dn_mask, other=0.0)
        h_prev = tl.where(t > 0, h_prev, 0.0)
        decay = tl.exp(dt[:, None] * A)                                   # Ā_t
        g += C[None, :] * gy[:, None]                                     # g_t
        u = dt * x
        grad_u = tl.sum(g * B[None, :], axis=1)                           # ∂L/∂(Δ_t x_t)
        grad_dA = g * decay * h_prev                                      # ∂L/∂(Δ_t A)
        tl.store(grad_x_ptr + row * d_inner + d_offs, grad_u * dt + gy * D, mask=d_mask)
        tl.store(grad_delta_ptr + row * d_inner + d_offs, grad_u * x + tl.sum(grad_dA * A, axis=1), mask=d_mask)
        tl.store(grad_B_part_ptr + (part_base + t) * d_state + n_offs, tl.sum(g * u[:, None], axis=0), mask=n_mask)
        tl.store(grad_C_part_ptr + (part_base + t) * d_state + n_offs, tl.sum(h * gy[:, None], axis=0),
                 mask=n_mask)
        grad_A += grad_dA * dt[:, None]
        grad_D += gy * x
        g = decay * g
        h = h_prev
    tl.store(grad_A_part_ptr + batch * d_inner * d_state + dn_offs, grad_A, mask=dn_mask)
    tl.store(grad_D_part_ptr + batch * d_inner + d_offs, grad_D, mask=d_mask)


class TritonSelectiveScan(torch.autograd.Function):
    """Forward and backward kernels above; gradients come back in each input's own dtype."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, block_d, store_states):
        ctx.dtypes = [v.dtype for v in (x, delta, A, B, C, D)]
        x, delta, A, B, C, D = (v.float().contiguous() for v in (x, delta, A, B, C, D))
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        y = torch.empty_like(x)
        states = x.new_empty((batch, length, d_inner, d_state) if store_states else (1,))  # (1,): never read
        grid = (batch, triton.cdiv(d_inner, block_d))
        _scan_forward_kernel[grid](x, delta, A, B, C, D, y, states, length, d_inner, d_state,
                                   BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(d_state),
                                   STORE_STATES=store_states, num_warps=NUM_WARPS)
        ctx.block_d = block_d
        ctx.save_for_backward(x, delta, A, B, C, D, states)
        return y.to(ctx.dtypes[0])

    @staticmethod
    def backward(ctx, grad_y):
        x, delta, A, B, C, D, states = ctx.saved_tensors
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        grid = (batch, triton.cdiv(d_inner, ctx.block_d))
        grad_x, grad_delta = torch.empty_like(x), torch.empty_like(delta)
        grad_A_part = x.new_empty(batch, d_inner, d_state)
        grad_B_part, grad_C_part = (x.new_empty(batch, grid[1], length, d_state) for _ in range(2))
        grad_D_part = x.new_empty(batch, d_inner)
        _scan_backward_kernel[grid](x, delta, A, B, C, D, states, grad_y.float().contiguous(),
                                    grad_x, grad_delta, grad_A_part, grad_B_part, grad_C_part, grad_D_part,
                                    length, d_inner, d_state,
                                    BLOCK_D=ctx.block_d, BLOCK_N=triton.next_power_of_2(d_state),
                                    num_warps=NUM_WARPS)
        grads = (grad_x, grad_delta, grad_A_part.sum(0), grad_B_part.sum(1), grad_C_part.sum(1), grad_D_part.sum(0))
        return *(g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)), None, None


def selective_scan_triton(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                          D: torch.Tensor, block_d: int = BLOCK_D) -> torch.Tensor:
    """`qhyer.models.scan.selective_scan` through the Triton kernels; `block_d` (a power of two) channels per
    program."""
    inputs = (x, delta, A, B, C, D)
    # states only when backward will run: inside Function.forward grad mode is always off, and needs_input_grad
    # ignores no_grad, so this wrapper decides
    store_states = torch.is_grad_enabled() and any(v.requires_grad for v in inputs)
    return TritonSelectiveScan.apply(*inputs, block_d, store_states)
