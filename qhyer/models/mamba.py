"""Mamba-1 mixer (Gu & Dao, arXiv 2312.00752), following `state-spaces/mamba` mamba_ssm/modules/mamba_simple.py:

    x, z = in_proj(u)                                  (b, L, d_inner) each
    x' = SiLU(causal depthwise conv(x))                kernel d_conv
    δ, B_t, C_t = x_proj(x');  Δ_t = softplus(dt_proj(δ))
    y = selective scan(x', Δ, A = −exp(A_log), B, C, D)
    out = out_proj(y · SiLU(z))

Two modes with one meaning: `forward` over a whole (left-padded) sequence and `step`, one token at a time on a
constant-size state (conv window (b, d_inner, d_conv), SSM state (b, d_inner, N)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from qhyer.models import mamba_cpu
from qhyer.models.layers import masked_mean
from qhyer.models.scan import selective_scan, selective_step

MambaState = tuple[torch.Tensor, torch.Tensor]  # conv window (b, d_inner, d_conv), SSM state (b, d_inner, N)


class Mamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dt_init_floor: float = 1e-4):
        super().__init__()
        d_inner = expand * d_model
        self.d_state, self.dt_rank = d_state, math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # mamba_simple.py init: dt_proj weight U(±dt_rank^−½); its bias is softplus⁻¹(Δ₀) with Δ₀ log-uniform in
        # [dt_min, dt_max] (floored), so the initial steps span short and long memories; S4D-real A = −(1..N); D = 1.
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))

    @property
    def A(self) -> torch.Tensor:
        return -torch.exp(self.A_log)  # (d_inner, N), negative so Ā = exp(ΔA) ∈ (0, 1]

    def _ssm_inputs(self, x: torch.Tensor, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x' (..., d_inner) → Δ (..., d_inner), B (..., N), C (..., N): all input-dependent (the selection).
        Δ = 0 where `mask` (...) is False."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj(dt)
        if mamba_cpu.supports(dt) and (mask is None or mask.dtype == torch.bool):   # softplus and mask in one pass
            return mamba_cpu.fused_softplus_mask(dt, mask), B, C
        delta = F.softplus(dt)
        return (delta if mask is None else delta * mask[..., None]), B, C

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """u (b, L, d_model); mask (b, L) bool, True = real token (left padding) → out (b, L, d_model) and
        Δ (b, L, d_inner).

        Padding is made invisible: zero input there (so the conv sees the zeros it would see before the sequence
        start) and Δ = 0 (Ā = 1, no input, the SSM state stays 0). The first real token is then processed exactly
        as by `step` from `initial_state`.
        """
        length = u.shape[1]
        if mask is not None:
            u = u * mask[..., None]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        if mamba_cpu.supports(x, self.conv1d.weight, self.conv1d.bias):    # one fused pass, no transposes
            x = mamba_cpu.fused_conv_silu(x, self.conv1d.weight, self.conv1d.bias)
        else:
            x = F.silu(self.conv1d(x.mT)[..., :length].mT)                # causal: keep the first L outputs
        delta, B, C = self._ssm_inputs(x, mask)
        return self.out_proj(selective_scan(x, delta, self.A, B, C, self.D, z=z)), delta

    def decay_means(self, delta: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Δ (b, L, d_inner) from `forward`, mask (b, L) True = real → means over real tokens and channels of Δ_t
        and of Ā_t = exp(Δ_t A) averaged over all N state dims ('mean_state') or, per channel, at its slowest state
        as trained ('slowest_state': the n with the smallest |A_n|, the longest memory; state 0 only at the S4D-real
        init A = −(1..N), since training moves every A_log)."""
        decay = torch.exp(delta[..., None] * self.A)                              # (b, L, d_inner, N)
        slowest = torch.exp(delta * self.A.max(-1).values)                        # A < 0: max = smallest |A_n|
        return {"delta_mean": masked_mean(delta.mean(-1), mask),
                "abar_mean_state": masked_mean(decay.mean((-2, -1)), mask),
                "abar_slowest_state": masked_mean(slowest.mean(-1), mask)}

    def initial_state(self, batch_size: int) -> MambaState:
        d_inner, d_conv = self.conv1d.weight.shape[0], self.conv1d.weight.shape[-1]
        device = self.D.device
        return (torch.zeros(batch_size, d_inner, d_conv, device=device),
                torch.zeros(batch_size, d_inner, self.d_state, device=device))

    def step(self, u: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One token u (b, d_model) → out (b, d_model) and the next state."""
        conv_window, h = state
        x, z = self.in_proj(u).chunk(2, dim=-1)
        conv_window = torch.cat([conv_window[..., 1:], x[..., None]], dim=-1)         # last d_conv inputs
        x = F.silu((conv_window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        delta, B, C = self._ssm_inputs(x)
        y, h = selective_step(h, x, delta, self.A, B, C, self.D)
        return self.out_proj(y * F.silu(z)), (conv_window, h)
