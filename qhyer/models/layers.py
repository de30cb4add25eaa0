"""Layers shared by the sequence models (QHyer, DT, QT, LSDT) and the MLP agents (GCIQL, HIQL, GCBC)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = False,
        activation: type[nn.Module] = nn.GELU, layer_norm_eps: float = 1e-5) -> nn.Sequential:
    """Plain MLP; `layer_norm` after every hidden activation, as OGBench's `MLP(layer_norm=True)`
    (seohongpark/ogbench impls/utils/networks.py). `layer_norm_eps` defaults to PyTorch's 1e-5."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        if layer_norm:
            layers.append(nn.LayerNorm(width, eps=layer_norm_eps))
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def attention_mask(pad_mask: torch.Tensor | None, length: int, device: torch.device) -> torch.Tensor:
    """Boolean (B or 1, 1, L, L) mask, True = may attend: causal, padded keys hidden, self always visible.

    Keeping the diagonal visible gives left-padded query rows a finite softmax (their outputs are masked
    out of every loss anyway), which avoids NaNs without a special case.
    """
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    if pad_mask is None:
        return causal[None, None]
    eye = torch.eye(length, dtype=torch.bool, device=device)
    return (causal & pad_mask[:, None, None, :]) | eye


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"width {dim} is not divisible by {n_heads} heads")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, L, D); mask: (B|1, 1, L, L) from `attention_mask`
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, dim // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, length, dim)))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, dropout: float = 0.0, expansion: int = 4):
        super().__init__(nn.Linear(dim, expansion * dim), nn.GELU(),
                         nn.Linear(expansion * dim, dim), nn.Dropout(dropout))


class TransformerBlock(nn.Module):
    """Pre-LN GPT block (as CORL `algorithms/offline/dt.py`): x + Attn(LN x), then x + FF(LN x)."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.ff = FeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.ff(self.ln2(x))


def interleave(*streams: torch.Tensor) -> torch.Tensor:
    """(B, T, D) × n → (B, n·T, D) ordered s0[0], s1[0], …, s0[1], s1[1], … (one timestep's tokens together)."""
    b, t, d = streams[0].shape
    return torch.stack(streams, dim=2).reshape(b, len(streams) * t, d)


def token_mask(mask: torch.Tensor, tokens_per_step: int) -> torch.Tensor:
    """(B, T) step mask → (B, n·T) token mask matching `interleave`."""
    return mask.repeat_interleave(tokens_per_step, dim=1)


class GaussianActionHead(nn.Module):
    """Diagonal Gaussian over actions: mean = tanh(Linear), log-std state-dependent (clamped) or a constant.

    Evaluation uses the mean (deterministic actions, as OGBench's `eval_temperature=0`).
    """

    def __init__(self, dim: int, action_dim: int, const_std: bool = False,
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0)):
        super().__init__()
        self.mean = nn.Linear(dim, action_dim)
        self.log_std = None if const_std else nn.Linear(dim, action_dim)
        self.log_std_bounds = log_std_bounds

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.mean(h))
        if self.log_std is None:
            return mean, torch.zeros_like(mean)
        return mean, self.log_std(h).clamp(*self.log_std_bounds)

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Sum over action dims of the Gaussian log-density, (…, A) → (…)."""
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)
