"""The gated hybrid attention–Mamba backbone of QHyer, with the attention-only and Mamba-only ablations.

Block (pre-LN residual, as the GPT blocks of CORL `algorithms/offline/dt.py`), for a token x:
    h = LN₁(x);  α = σ(wᵀh + b)                                   one scalar gate per token
    x ← x + α · Attn(h) + (1 − α) · Mamba(h)                      'hybrid'; 'attention' / 'mamba' keep one branch
    x ← x + MLP(LN₂(x))
The paper gives α = σ(wᵀx + b) and parallel branches; reading x as the block's normalised input and fusing full-width
branches is our assumption (LSDT, the public proxy, splits channels and fuses with a softmax instead).

Both modes: `forward` over a left-padded window (attention masks padded keys, Mamba ignores padding) and `step`,
one token at a time with a KV cache and the Mamba state, equal to `forward` on the sequence so far.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qhyer.models.layers import CausalSelfAttention, FeedForward, attention_mask
from qhyer.models.mamba import Mamba

BACKBONES = ("attention", "mamba", "hybrid")


class HybridBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float, backbone: str, mamba: dict):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout) if backbone != "mamba" else None
        self.mamba = Mamba(dim, **mamba) if backbone != "attention" else None
        self.mamba_drop = nn.Dropout(dropout)  # residual dropout, as the attention branch's
        self.gate = nn.Linear(dim, 1) if backbone == "hybrid" else None
        self.ff = FeedForward(dim, dropout)

    def _fuse(self, h: torch.Tensor, attn: torch.Tensor | None, mamba: torch.Tensor | None,
              stats: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.gate is None:
            return attn if mamba is None else mamba
        alpha = torch.sigmoid(self.gate(h))                    # (b, L, 1)
        stats["gate"] = alpha.squeeze(-1)
        return torch.lerp(mamba, attn, alpha)                 # α·attn + (1 − α)·mamba in one op

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, pad_mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (b, L, D); attn_mask from `attention_mask`; pad_mask (b, L) True = real → x, stats {'delta', 'gate'}."""
        h = self.ln1(x)
        stats: dict[str, torch.Tensor] = {}
        attn = self.attn(h, attn_mask) if self.attn is not None else None
        mamba = None
        if self.mamba is not None:
            mamba, stats["delta"] = self.mamba(h, pad_mask)
            mamba = self.mamba_drop(mamba)
        x = x + self._fuse(h, attn, mamba, stats)
        return x + self.ff(self.ln2(x)), stats

    def initial_cache(self, batch_size: int) -> dict:
        cache: dict = {}
        if self.attn is not None:
            dim = self.ln1.weight.shape[0]
            empty = self.ln1.weight.new_zeros(batch_size, self.attn.n_heads, 0, dim // self.attn.n_heads)  # b,H,0,hd
            cache["k"], cache["v"] = empty, empty
        if self.mamba is not None:
            cache["mamba"] = self.mamba.initial_state(batch_size)
        return cache

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """One token x (b, 1, D); `cache` (from `initial_cache`, updated in place) holds everything before it."""
        h = self.ln1(x)
        attn = mamba = None
        if self.attn is not None:  # the new query attends to every cached key (all real, all in the past) and itself
            b, _, dim = h.shape
            q, k, v = self.attn.qkv(h).view(b, 1, 3, self.attn.n_heads, -1).permute(2, 0, 3, 1, 4)
            cache["k"], cache["v"] = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            y = F.scaled_dot_product_attention(q, cache["k"], cache["v"])
            attn = self.attn.proj(y.transpose(1, 2).reshape(b, 1, dim))
        if self.mamba is not None:
            out, cache["mamba"] = self.mamba.step(h[:, 0], cache["mamba"])
            mamba = out[:, None]
        x = x + self._fuse(h, attn, mamba, {})
        return x + self.ff(self.ln2(x))


class HybridStack(nn.Module):
    """n blocks and a final LayerNorm over a token sequence."""

    def __init__(self, n_layers: int, dim: int, n_heads: int, dropout: float, backbone: str, mamba: dict):
        super().__init__()
        self.blocks = nn.ModuleList(HybridBlock(dim, n_heads, dropout, backbone, mamba) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """x (b, L, D), pad_mask (b, L) → hidden (b, L, D) and per-layer stats (Δ (b, L, d_inner), gate α (b, L))."""
        attn_mask = attention_mask(pad_mask, x.shape[1], x.device)
        stats = []
        for block in self.blocks:
            x, layer_stats = block(x, attn_mask, pad_mask)
            stats.append(layer_stats)
        return self.ln_f(x), stats

    def initial_cache(self, batch_size: int) -> list[dict]:
        return [block.initial_cache(batch_size) for block in self.blocks]

    def step(self, x: torch.Tensor, cache: list[dict]) -> torch.Tensor:
        """One token x (b, 1, D) → hidden (b, 1, D); `cache` is updated in place."""
        for block, block_cache in zip(self.blocks, cache, strict=True):
            x = block.step(x, block_cache)
        return self.ln_f(x)
