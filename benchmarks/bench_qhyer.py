"""QHyer CPU cost: the selective scan and one full training step, against attention-only QHyer and DT.

    .venv/bin/python benchmarks/bench_qhyer.py [--threads 1] [--repeats 5] [--device cpu] [--skip-scan]

Scan: forward + backward of `selective_scan` (on the CPU in float32: the fused C kernel of
`qhyer/models/mamba_cpu.py`), of the pure-PyTorch time-blocked scan `SelectiveScan` (hand-written backward) and of
`selective_scan_reference` (one Python step per time step, autograd) at L = 60, 300, 1000 tokens, (a) at the default
model size, d_inner = 256, N = 16 (Mamba-1 defaults at QHyer's width 128), with batch sizes holding ~4k tokens as in
training (64 windows x 60 tokens); (b) at the tiny size of smoke runs and tests, d_inner = 32, N = 8, batch 8.
Training step: `agent.update` at each method's default config (QHyer: batch 64, K = 20, 3 blocks, width 128, nf
critic) on synthetic cube-single-sized data (obs 28, action 5), for QHyer hybrid, attention-only and Mamba-only and
for DT. The agents take turns within every repeat (one update each), so a change in the machine's load hits all of
them alike; each ratio is the median over repeats of that repeat's ratio. FLOPs of one update (forward, backward and
optimiser) from torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention), plus the selective
scan's arithmetic, which no torch op carries. Then where the time goes: self CPU time of the hybrid and the
attention-only update by kind of operation (torch.profiler), and the hybrid step's parts.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from qhyer.agent import Agent, DataInfo, dataset_family
from qhyer.algorithm import QHyerAgent
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.methods import method_classes
from qhyer.models import mamba_cpu
from qhyer.models.hybrid import BACKBONES
from qhyer.models.scan import SelectiveScan, selective_scan, selective_scan_reference

# (batch, tokens, d_inner, N)
SCAN_SHAPES = ((64, 60, 256, 16), (16, 300, 256, 16), (4, 1000, 256, 16), (8, 60, 32, 8), (8, 300, 32, 8),
               (8, 1000, 32, 8))
# FLOPs of the selective scan per state element (b · L · d_inner · N) and layer, as written in the equations of
# qhyer/models/mamba_cpu.py (an exp counted as one): forward Δ·A, exp, Ā·h + u·B (3), C·h summed (2) = 7; backward
# g_t (2), ∂(ΔA) (2), ∂C and ∂B sums (4), ∂u (2), ∂Δ (2), ∂A (2), Ā·g (1), exp (1) = 16. Recomputation not counted.
SCAN_FLOPS_PER_STATE_ELEMENT = 7 + 16
# name → (method, QHyer backbone, fused C kernels on); "no C" is the hybrid on the PyTorch scan and conv
STEP_AGENTS = {**{f"qhyer {backbone}": ("qhyer", backbone, True) for backbone in BACKBONES},
               "qhyer hybrid, no C": ("qhyer", "hybrid", False), "dt": ("dt", None, True)}
# op name → kind, for the split of an update's self CPU time (first match wins; the rest is "elementwise, other")
# (the PyTorch scan's own ops land under matmul and elementwise; only its Python glue under "selective scan")
OP_KINDS = (("selective scan (fused C)", ("Scan",)), ("conv + SiLU (fused C; or mkldnn conv)", ("ConvSiLU",
            "convolution")), ("matmul (every linear layer, attention)", ("aten::mm", "aten::addmm", "aten::bmm",
            "aten::_softmax")), ("dropout masks", ("bernoulli",)), ("optimiser (AdamW)", ("Optimizer", "_foreach")))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-scan", action="store_true", help="only the training-step tables")
    return parser.parse_args()


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn(). On a shared CPU other processes stretch the wall time;
    the CPU time is what the work itself took."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def scan_inputs(batch: int, length: int, d_inner: int, d_state: int, device: torch.device) -> list[torch.Tensor]:
    x = torch.randn(batch, length, d_inner, device=device)
    delta = F.softplus(torch.randn(batch, length, d_inner, device=device) - 2)
    A = -torch.arange(1.0, d_state + 1, device=device).repeat(d_inner, 1)
    B, C = torch.randn(batch, length, d_state, device=device), torch.randn(batch, length, d_state, device=device)
    return [t.requires_grad_() for t in (x, delta, A, B, C, torch.ones(d_inner, device=device))]


def synthetic_cube(episodes: int = 20, length: int = 200, seed: int = 0) -> EpisodeDataset:
    spec = get_spec("cube-single-play")
    rng = np.random.default_rng(seed)
    return EpisodeDataset(spec.name, np.cumsum(rng.normal(0, 0.1, (episodes * length, spec.obs_dim)), 0),
                          rng.uniform(-1, 1, (episodes * length, spec.action_dim)),
                          np.arange(length, episodes * length + 1, length), spec.goal_dims)


@contextlib.contextmanager
def fused_kernels(enabled: bool):
    """With `enabled` False, Mamba runs as without qhyer/models/mamba_cpu.py: PyTorch scan, mkldnn conv."""
    supports = mamba_cpu.supports
    if not enabled:
        mamba_cpu.supports = lambda *tensors: False
    try:
        yield
    finally:
        mamba_cpu.supports = supports


def make_agent(method: str, backbone: str | None, data: EpisodeDataset,
               device: torch.device) -> tuple[Agent, dict[str, torch.Tensor]]:
    """A method at its default config (QHyer with `backbone`), in training mode, and one batch for it."""
    config_cls, agent_cls = method_classes(method)
    spec = get_spec(data.name)
    cfg = config_cls(**({"backbone": backbone} if backbone else {})).for_family(dataset_family(spec))
    torch.manual_seed(0)
    agent = agent_cls(cfg, DataInfo.from_dataset(spec, data, cfg.goal_rep)).to(device)
    agent.train()
    batch = {k: v.to(device) for k, v in agent.make_sampler(data, seed=0).sample(cfg.batch_size).items()}
    return agent, batch


def update_flops(agent: Agent, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one update as FlopCounterMode counts them, plus the selective scan's (no torch op carries them)."""
    with FlopCounterMode(display=False) as counter:
        agent.update(batch, 0)
    scan_elements = 0
    if isinstance(agent, QHyerAgent):
        for block in agent.model.backbone.blocks:
            if block.mamba is not None:
                d_inner, d_state = block.mamba.A_log.shape
                scan_elements += batch["mask"].numel() * 3 * d_inner * d_state   # 3 tokens per step
    return counter.get_total_flops() + SCAN_FLOPS_PER_STATE_ELEMENT * scan_elements


def op_kind_ms(update, updates: int = 2) -> dict[str, float]:
    """Self CPU time per call of `update` by kind of operation (OP_KINDS), under torch.profiler (which adds a
    little)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            update()
    kinds = dict.fromkeys([kind for kind, _ in OP_KINDS] + ["elementwise, other"], 0.0)
    for event in prof.key_averages():
        kind = next((kind for kind, keys in OP_KINDS if any(key in event.key for key in keys)), "elementwise, other")
        kinds[kind] += event.self_cpu_time_total / 1e3 / updates
    return kinds


def component_seconds(agent: QHyerAgent, batch: dict[str, torch.Tensor], repeats: int,
                      device: torch.device) -> dict[str, float]:
    """Time of each part of `QHyerAgent.losses` on one batch, run the way `losses` runs it."""
    s, a = agent.normalize_obs(batch["observations"]), batch["actions"]
    g = agent.normalize_goal(batch["goals"])
    g_steps = g[:, None].expand(-1, s.shape[1], -1)
    q_tokens = torch.zeros(batch["mask"].shape, device=device)

    def flow_q_tokens():
        with torch.no_grad():
            agent.critic.q(s.flatten(0, 1), a.flatten(0, 1), g_steps.flatten(0, 1))

    def backbone():
        hidden, _ = agent.model(q_tokens, torch.cat([s, g_steps], -1), a, batch["timesteps"], batch["mask"])
        mean, log_std = agent.model.action_head(hidden)
        (mean.sum() + log_std.sum()).backward()

    parts = {"flow Q tokens, b x K (no grad)": flow_q_tokens,
             "flow NF loss, b last steps": lambda: agent.critic.loss(s[:, -1], a[:, -1], g).backward(),
             "expectile head Q(s, g), b x K": lambda: agent.q_head(s, g_steps).sum().backward(),
             "backbone + action head": backbone}
    return {name: median_seconds(fn, repeats, device) for name, fn in parts.items()}


def scan_table(repeats: int, device: torch.device) -> None:
    fused = device.type == "cpu" and mamba_cpu.library() is not None
    print(f"\nselective scan, forward + backward (selective_scan = {'fused C kernel' if fused else 'dispatch'})")
    header = (f"{'L':>5s} {'batch':>5s} {'d_inner':>7s} {'N':>3s} {'selective_scan':>15s} {'PyTorch blocked':>15s} "
              f"{'step loop':>10s} {'vs blocked':>10s} {'vs loop':>8s}")
    print(header + "\n" + "-" * len(header))
    for batch, length, d_inner, d_state in SCAN_SHAPES:
        inputs = scan_inputs(batch, length, d_inner, d_state, device)
        times = [median_seconds(lambda fn=fn, inputs=inputs: fn(*inputs).sum().backward(), repeats, device)
                 for fn in (selective_scan, SelectiveScan.apply, selective_scan_reference)]
        print(f"{length:5d} {batch:5d} {d_inner:7d} {d_state:3d} {times[0] * 1e3:12.1f} ms {times[1] * 1e3:12.1f} ms "
              f"{times[2] * 1e3:7.1f} ms {times[1] / times[0]:9.1f}x {times[2] / times[0]:7.1f}x")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} thread(s), load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.skip_scan:
        scan_table(args.repeats, device)

    data = synthetic_cube()
    agents = {name: make_agent(method, backbone, data, device) for name, (method, backbone, _) in STEP_AGENTS.items()}

    def update(name: str) -> None:
        agent, batch = agents[name]
        with fused_kernels(STEP_AGENTS[name][2]):
            agent.update(batch, 0)

    for name in agents:                                                    # warm-up: allocations, lazy init
        update(name)
    rounds = [{name: timed(functools.partial(update, name), device) for name in agents} for _ in range(args.repeats)]
    wall_ms, cpu_ms = ({name: 1e3 * statistics.median(r[name][i] for r in rounds) for name in agents} for i in (0, 1))
    flops = {name: update_flops(agent, batch) for name, (agent, batch) in agents.items() if STEP_AGENTS[name][2]}
    # ratios from CPU time (device time on CUDA: wall), so other processes on a shared machine do not skew them
    clock = 0 if device.type == "cuda" else 1

    def ratio(a: str, b: str) -> float:
        return statistics.median(r[a][clock] / r[b][clock] for r in rounds)

    print(f"\ntraining step (agent.update), default configs, median of {args.repeats} rounds (agents take turns)")
    header = f"{'agent':>19s} {'wall ms':>8s} {'CPU ms':>7s} {'GFLOP/update':>13s} {'parameters':>11s}"
    print(header + "\n" + "-" * len(header))
    for name, (agent, _) in agents.items():
        params = sum(p.numel() for p in agent.parameters())
        gflops = f"{flops[name] / 1e9:13.2f}" if name in flops else f"{'(as hybrid)':>13s}"
        print(f"{name:>19s} {wall_ms[name]:8.0f} {cpu_ms[name]:7.0f} {gflops} {params:11,d}")
    print(f"ratios of {'wall' if clock == 0 else 'CPU'} times, median over rounds:")
    time_vs_attention, time_vs_dt = ratio("qhyer hybrid", "qhyer attention"), ratio("qhyer hybrid", "dt")
    flop_vs_dt = flops["qhyer hybrid"] / flops["dt"]
    print(f"QHyer hybrid / attention-only time: {time_vs_attention:.2f}x (target <= 1.5x); without the C kernels "
          f"{ratio('qhyer hybrid, no C', 'qhyer attention'):.2f}x")
    print(f"QHyer hybrid / DT: time {time_vs_dt:.2f}x, FLOPs {flop_vs_dt:.2f}x, time ratio / FLOP ratio "
          f"{time_vs_dt / flop_vs_dt:.2f} (target <= 1.5)")

    # the profiler clocks wall time: agents take turns again and each kind's median over the rounds is kept
    profiled = ("qhyer hybrid", "qhyer hybrid, no C", "qhyer attention")
    split_rounds = [{name: op_kind_ms(functools.partial(update, name)) for name in profiled} for _ in range(3)]
    split = {name: {kind: statistics.median(r[name][kind] for r in split_rounds) for kind in split_rounds[0][name]}
             for name in profiled}
    print("\nwhere the time goes: self ms per update by kind of operation (torch.profiler, median of 3 rounds)")
    header = f"{'kind':>40s} {'hybrid':>8s} {'hybrid, no C':>13s} {'attention':>10s} {'hybrid - attention':>19s}"
    print(header + "\n" + "-" * len(header))
    for kind in [*split["qhyer hybrid"], "total"]:
        hybrid, no_c, attention = (sum(ms.values()) if kind == "total" else ms[kind] for ms in split.values())
        print(f"{kind:>40s} {hybrid:8.1f} {no_c:13.1f} {attention:10.1f} {hybrid - attention:19.1f}")
    print("\nthe hybrid step's parts (forward + backward unless marked; the update adds the optimiser)")
    for name, seconds in component_seconds(*agents["qhyer hybrid"], args.repeats, device).items():
        print(f"{name:>34s} {seconds * 1e3:6.0f} ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
