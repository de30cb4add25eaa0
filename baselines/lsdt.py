"""Long-Short Decision Transformer (LSDT; WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER,
decision_transformer/LSDT.py).

Each block splits the channels: attdim = h − convdim go through causal multi-head attention (long range), convdim
through a causal dynamic convolution over the 3K-token sequence (short range); the two outputs are concatenated and
re-weighted by a learned softmax over the whole channel dimension, projected, and added in a post-LN block. The rest
is DT (`baselines/sequence.py`): (R_t, [s_t; g], a_t) tokens as LSDT's `--goalconcate`, action MSE, Linear + Tanh head.
Training: AdamW, 10k warmup then cosine, grad clip 0.25 (scripts/train.py).

Protocol 'source' as LSDT trains on D4RL (`--goalconcate`): trajectories cut at terminals and timeouts, one-row
pieces dropped (Data/Data_with_Goal_download.py l.45-65; `qhyer.data.d4rl.source_episodes`), drawn uniformly with
full windows (`TrajectoryWindowSampler`, decision_transformer/utils_o.py l.177-227), [s; goal] standardised jointly
over the kept rows (utils_o.py l.156-171: `LSDTConfig.data_info`), context 30 on maze2d-large (README's command).
Assumption: LSDT scripts only its AntMaze goal files; its Maze2d ones ("v6", scripts/train.py l.64-66) are taken
to be built by the same script.

Padding: LSDT's min-DT dataset pads windows on the right, where causality hides the padding; our windows are
left-padded, so both branches also hide padded tokens (the attention mask), which keeps real tokens' outputs equal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.sequence import CosineDecayConfig, RTGTransformer, SequenceAgent, warmup_cosine_schedule
from qhyer.agent import DataInfo
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec
from qhyer.data.samplers import TrajectoryWindowSampler, WindowSampler
from qhyer.errors import ConfigError
from qhyer.models.layers import CausalSelfAttention, FeedForward


@dataclass
class LSDTConfig(CosineDecayConfig):
    """LSDT scripts/train.py argparse defaults unless noted; fields not listed are DT's and equal LSDT's
    (batch 64, K 20, width 128, 3 blocks, AdamW lr 1e-4, wd 1e-4, 10k warmup, clip 0.25)."""

    name: str = "lsdt"
    context_len: int | None = None    # --context_len 20; README's maze2d-large command: 30 (SOURCE_DATASET_DEFAULTS)
    n_heads: int = 2                  # --n_heads 2 (attention branch)
    dropout: float = 0.25             # --dropout_p 0.25 (projection and MLP dropout; no embedding dropout)
    conv_dim: int = 64                # --convdim 64: channels of the convolution branch
    kernel_size: int = 11             # --kernel_size 11 ⇒ 6 causal taps
    attn_dropout: float = 0.1         # LSDT.py `dk`: attention-weight dropout 0.1 in every block
    kernel_dropout: float = 0.2       # LSDT.py: DynamicConvolution(dropout_rate=0.2) on the kernel logits
    # lr_decay_steps 0 = the whole run: cosine to 0 over --max_train_iters 200 x --num_updates_per_iter 500
    target_return: float | None = None  # conditioning return at step 0, reward units; None = the protocol's

    # assumption, as DTConfig: sparse 0/1 goal reward ⇒ max return 1
    RELABELLED_DEFAULTS: ClassVar[dict[str, Any]] = {**CosineDecayConfig.RELABELLED_DEFAULTS, "target_return": 1.0,
                                                     "context_len": 20}
    # scripts/train.py l.61-75, 297: maze2d rtg_target 300, antmaze 100, --rtg_scale 1000; --goalconcate appends
    # D4RL's infos/goal to the state (Data/Data_with_Goal_download.py l.61).
    SOURCE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "maze2d": {"target_return": 300.0, "reward_scale": 1000.0, "goal_input": "d4rl", "context_len": 20},
        "antmaze": {"target_return": 100.0, "reward_scale": 1000.0, "goal_input": "d4rl", "context_len": 20},
    }
    # README.md "For training": `scripts/train.py --env maze2d --dataset large ... --context_len 30`
    SOURCE_DATASET_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {"maze2d-large-v1": {"context_len": 30}}

    def data_info(self, spec: DatasetSpec, dataset: EpisodeDataset) -> DataInfo:
        """Under 'source': LSDT's statistics (utils_o.py l.156-171), mean and std + 1e-6 of its state, [s; goal]
        with `goal_input` d4rl, over the rows of the trajectories it keeps (more than one row)."""
        info = super().data_info(spec, dataset)
        if self.protocol != "source":
            return info
        lengths = np.diff(dataset.episode_starts, append=len(dataset))
        kept = np.repeat(lengths > 1, lengths)
        parts = [dataset.observations[kept]] + ([dataset.meta["goal"][kept]] if self.goal_input == "d4rl" else [])
        states = np.concatenate(parts, axis=1)
        mean, std, o = states.mean(0), states.std(0) + 1e-6, dataset.obs_dim
        goal = {"goal_mean": mean[o:], "goal_std": std[o:]} if self.goal_input == "d4rl" else {}
        return dataclasses.replace(info, obs_mean=mean[:o], obs_std=std[:o], **goal)


class DynamicConv(nn.Module):
    """fairseq/espnet DynamicConvolution as LSDT uses it (use_kernel_mask=True, use_bias=True).

    Linear(c → 2c) + GLU; each token predicts `heads` kernels of `kernel_size` taps (heads = c/4, each over c/heads
    contiguous channels); tap j of token t reads token t + j − (k−1)/2 (fairseq's band centred at (k−1)/2) and the
    causal mask removes the taps after t, so (k+1)/2 taps stay: t − (k−1)/2 … t. Softmax over the remaining taps,
    a bias, then Linear(c → c). Taps outside `mask` (future or padded tokens) get weight 0.
    """

    def __init__(self, dim: int, kernel_size: int, kernel_dropout: float):
        super().__init__()
        if kernel_size % 2 == 0 or dim % 4:
            raise ConfigError(f"LSDT needs an odd kernel_size and conv_dim divisible by 4 (got {kernel_size}, {dim})")
        self.heads, self.kernel_size, self.kernel_dropout = dim // 4, kernel_size, kernel_dropout  # LSDT: wshare=c/4
        self.glu_in = nn.Linear(dim, 2 * dim)
        self.kernel = nn.Linear(dim, self.heads * kernel_size)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, L, C); mask: (B|1, 1, L, L) boolean, True = token may read that position
        b, length, c = x.shape
        k, half = self.kernel_size, (self.kernel_size - 1) // 2
        x = F.glu(self.glu_in(x), dim=-1)
        # LSDT drops kernel logits (not -inf masked), before the softmax.
        logits = F.dropout(self.kernel(x), self.kernel_dropout, self.training).view(b, length, self.heads, k)
        source = torch.arange(length, device=x.device)[:, None] + torch.arange(k, device=x.device) - half  # (L, k)
        inside = (source >= 0) & (source < length)
        visible = mask[:, 0].gather(2, source.clamp(0, length - 1).expand(mask.shape[0], -1, -1)) & inside
        weights = logits.masked_fill(~visible[:, :, None, :], float("-inf")).softmax(-1)  # (B, L, H, k)
        windows = F.pad(x, (0, 0, half, half)).unfold(1, k, 1)                                # (B, L, C, k)
        y = torch.einsum("blhk,blhdk->blhd", weights, windows.view(b, length, self.heads, c // self.heads, k))
        return self.out(y.reshape(b, length, c) + self.bias)


class LongShortMixer(nn.Module):
    """LSDT.py `MaskedCausalAttention`: attention on the first h − convdim channels, dynamic convolution on the rest,
    fused by softmax(Linear heads(ReLU(Linear(h → h/2)))) over all h channels, then projection and dropout."""

    def __init__(self, dim: int, cfg: LSDTConfig):
        super().__init__()
        self.att_dim = dim - cfg.conv_dim
        self.attention = CausalSelfAttention(self.att_dim, cfg.n_heads, cfg.attn_dropout)
        # LSDT's branch has no output projection of its own (the fused `proj_net` follows).
        self.attention.proj, self.attention.resid_drop = nn.Identity(), nn.Identity()
        self.conv = DynamicConv(cfg.conv_dim, cfg.kernel_size, cfg.kernel_dropout)
        self.fuse_hidden = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU())
        self.fuse_att, self.fuse_conv = nn.Linear(dim // 2, self.att_dim), nn.Linear(dim // 2, cfg.conv_dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x_att, x_conv = x.split([self.att_dim, x.shape[-1] - self.att_dim], dim=-1)
        both = torch.cat([self.attention(x_att, mask), self.conv(x_conv, mask)], dim=-1)
        z = self.fuse_hidden(both)
        weights = torch.cat([self.fuse_att(z), self.fuse_conv(z)], dim=-1).softmax(-1)
        return self.drop(self.proj(weights * both))


class LSDTBlock(nn.Module):
    """Post-LN block (LSDT.py `Block`): x = LN1(x + mix(x)); x = LN2(x + MLP(x))."""

    def __init__(self, dim: int, cfg: LSDTConfig):
        super().__init__()
        self.mix, self.ff = LongShortMixer(dim, cfg), FeedForward(dim, cfg.dropout)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.mix(x, mask))
        return self.ln2(x + self.ff(x))


def xavier_init(module: nn.Module) -> None:
    """LSDT.py `init_weights`: Xavier-uniform Linear/Embedding weights, zero biases. LSDT has separate q/k/v
    Linears, so the fused projection is initialised one third at a time (`apply` visits it after its children)."""
    if isinstance(module, CausalSelfAttention):
        for part in module.qkv.weight.data.chunk(3):
            nn.init.xavier_uniform_(part)
    elif isinstance(module, nn.Linear | nn.Embedding):
        nn.init.xavier_uniform_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


class LSDTAgent(SequenceAgent):
    def __init__(self, cfg: LSDTConfig, info: DataInfo):
        super().__init__(cfg, info)
        if not 0 < cfg.conv_dim < cfg.embed_dim:
            raise ConfigError(f"lsdt.conv_dim must lie strictly between 0 and embed_dim={cfg.embed_dim}")
        blocks = [LSDTBlock(cfg.embed_dim, cfg) for _ in range(cfg.n_layers)]
        self.model = RTGTransformer(self.state_dim, info.action_dim, cfg.embed_dim, info.max_episode_length, blocks,
                                    embed_dropout=0.0, final_norm=False)  # LSDT: embed_ln only, no final norm
        self.model.apply(xavier_init)
        self.init_optimizer(lambda opt: warmup_cosine_schedule(opt, cfg.warmup_steps, cfg.lr_decay_steps,
                                                                cfg.lr_decay_every))

    def make_sampler(self, dataset: EpisodeDataset, seed: int) -> WindowSampler:
        if self.cfg.protocol != "source":
            return super().make_sampler(dataset, seed)
        return TrajectoryWindowSampler(dataset, self.cfg.context_len, seed, self.cfg.reward_scale)
