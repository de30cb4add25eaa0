"""GPU table: ms per training update (QHyer hybrid and attention-only, DT; eager and torch.compile) and the selective
scan (Triton on CUDA vs the CPU scan). Run by benchmarks/device_check.sh on the GPU machine; `--device cpu --tiny` is
the CPU smoke mode tests/test_device_check.py runs.

    python benchmarks/bench_gpu.py [--device cuda] [--repeats 20] [--out benchmarks/results/gpu_<date>.csv]
        [--no-compile] [--tiny]

Sizes: each method's config defaults, which the `paper` profile (workflow/config/profiles/paper.yaml) leaves as
they are (QHyer: batch 64, K = 20, 3 blocks, width 128, N = 16, nf critic; DT: batch 64, K = 20, 3 layers, width
128), on synthetic cube-single-sized data (benchmarks/bench_train_step.py), so the numbers measure the update alone.
Scan: forward + backward at (b 64, L 60, d_inner 256, N 16), i.e. one Mamba layer at the default training shape:
the CPU scan on all of this machine's cores and on one thread; on CUDA the PyTorch scan and Triton at 8, 16 and 32
channels per program (scan_triton.BLOCK_D).
Compiled: `torch.compile` of the agent's loss function (model, critic and losses; the optimizer step stays eager);
a failure is a row with its status, not an abort. Each row is the median of `--repeats` timed calls after warm-up,
appended to the CSV as soon as it is measured, so a stage killed by its timeout keeps the rows before it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_train_step import synthetic_dataset  # benchmarks/ (scripts run from their folder)

from qhyer.agent import DataInfo, dataset_family
from qhyer.data.registry import get_spec
from qhyer.methods import method_classes
from qhyer.models.scan import SelectiveScan

COLUMNS = ["benchmark", "variant", "device", "mode", "size", "params", "ms", "repeats", "status", "torch", "triton",
           "device_name", "cpu_threads"]
STEPS = [("qhyer-hybrid", "qhyer", {"backbone": "hybrid"}), ("qhyer-attention", "qhyer", {"backbone": "attention"}),
         ("dt", "dt", {})]
SCAN_SHAPE = (64, 60, 256, 16)  # (b, L, d_inner, N): issue 13's target shape
TRITON_BLOCKS = (8, 16, 32)
# --tiny: a smoke run of every code path in seconds on a CPU
TINY_SIZES = {"batch_size": 4, "context_len": 4, "embed_dim": 16, "n_layers": 1}
TINY_QHYER = {"d_state": 4, "critic_hidden": 16, "flow_layers": 2, "q_head_hidden": (16,)}
TINY_SCAN_SHAPE = (2, 12, 8, 4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measured(row: dict, fn: Callable[[], Callable[[], object]], device: torch.device, args) -> dict:
    """`row` with the median ms of the callable that `fn` builds, or with the failure as its status: a compile or
    kernel failure is a result here, not a crash that would lose the rows after it."""
    try:
        return {**row, "ms": median_ms(fn(), device, args.repeats, args.warmup), "status": "ok"}
    except Exception as error:
        return {**row, "ms": "", "status": f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"}


def compiled_update(agent, batches: list[dict[str, torch.Tensor]]) -> Callable[[], dict[str, float]]:
    agent.losses = torch.compile(agent.losses)  # an instance attribute: `update` calls it
    return cycling_update(agent, batches)


def cycling_update(agent, batches: list[dict[str, torch.Tensor]]) -> Callable[[], dict[str, float]]:
    cycle = itertools.cycle(batches)
    return lambda: agent.update(next(cycle), 0)


def scan_fwd_bwd(scan: Callable, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> Callable[[], object]:
    return lambda: torch.autograd.grad(scan(*inputs), inputs, grad_out)


def build_agent(method: str, overrides: dict, device: torch.device, tiny: bool):
    config_cls, agent_cls = method_classes(method)
    dataset = synthetic_dataset()
    spec = get_spec(dataset.name)
    if tiny:
        overrides = {**overrides, **TINY_SIZES, **(TINY_QHYER if method == "qhyer" else {})}
    cfg = config_cls(**overrides).for_family(dataset_family(spec)).for_budget(100_000)
    torch.manual_seed(0)
    agent = agent_cls(cfg, DataInfo.from_dataset(spec, dataset, cfg.goal_rep)).to(device)
    sampler = agent.make_sampler(dataset, seed=0)
    batches = [{k: v.to(device) for k, v in sampler.sample(cfg.batch_size).items()} for _ in range(4)]
    size = f"batch {cfg.batch_size}, K {cfg.context_len}, {cfg.n_layers} layers, width {cfg.embed_dim}"
    return agent, batches, size


def step_rows(args, device: torch.device, compile_modes: list[str]):
    """One row per (method, mode): ms per `agent.update` on pre-sampled batches already on the device."""
    for mode in compile_modes:
        for variant, method, overrides in STEPS:
            agent, batches, size = build_agent(method, overrides, device, args.tiny)
            params = sum(p.numel() for p in agent.parameters() if p.requires_grad)
            row = {"benchmark": "train_step", "variant": variant, "device": device.type, "mode": mode, "size": size,
                   "params": params}
            build = compiled_update if mode == "compiled" else cycling_update
            yield measured(row, lambda build=build, agent=agent, batches=batches: build(agent, batches), device, args)


def scan_inputs(shape: tuple[int, int, int, int], device: torch.device) -> list[torch.Tensor]:
    batch, length, d_inner, d_state = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, length, d_inner, generator=g)
    delta = F.softplus(torch.randn(batch, length, d_inner, generator=g) - 2)
    A = -torch.arange(1.0, d_state + 1).repeat(d_inner, 1)  # Mamba's S4D-real init
    B, C = torch.randn(batch, length, d_state, generator=g), torch.randn(batch, length, d_state, generator=g)
    D = torch.ones(d_inner)
    return [t.to(device).requires_grad_() for t in (x, delta, A, B, C, D)]


def scan_rows(args, device: torch.device):
    """Forward + backward of one scan: the CPU scan on the CPU, and on CUDA the PyTorch scan and the Triton kernel."""
    shape = TINY_SCAN_SHAPE if args.tiny else SCAN_SHAPE
    size = "b {}, L {}, d_inner {}, N {}".format(*shape)
    cpu = torch.device("cpu")
    all_threads = torch.get_num_threads()
    candidates = [("cpu-scan", cpu, SelectiveScan.apply), ("cpu-scan-1thread", cpu, SelectiveScan.apply)]
    if device.type == "cuda":
        candidates.append(("torch-scan", device, SelectiveScan.apply))
        if importlib.util.find_spec("triton") is not None:
            from qhyer.models.scan_triton import selective_scan_triton

            candidates += [(f"triton-block{block}", device,
                            lambda *inputs, block=block: selective_scan_triton(*inputs, block_d=block))
                           for block in TRITON_BLOCKS]
    for variant, where, scan in candidates:
        row = {"benchmark": "scan_fwd_bwd", "variant": variant, "device": where.type, "mode": "eager", "size": size,
               "params": ""}
        torch.set_num_threads(1 if variant.endswith("1thread") else all_threads)
        yield measured(row, lambda scan=scan, where=where: scan_fwd_bwd(scan, scan_inputs(shape, where),
                                                                        torch.ones(shape[:3], device=where)),
                       where, args)
    torch.set_num_threads(all_threads)


def print_table(rows: list[dict]) -> None:
    print(f"{'benchmark':13s} {'variant':16s} {'device':6s} {'mode':8s} {'params':>9s} {'ms':>9s}  status")
    for r in rows:
        ms = f"{r['ms']:9.2f}" if r["ms"] != "" else f"{'-':>9s}"
        params = f"{r['params']:9,d}" if r["params"] != "" else ""
        print(f"{r['benchmark']:13s} {r['variant']:16s} {r['device']:6s} {r['mode']:8s} {params:>9s} {ms}  "
              f"{r['status']}")
    ms = {(r["benchmark"], r["variant"], r["mode"]): r["ms"] for r in rows if r["ms"] != ""}
    triton = [v for (bench, variant, _), v in ms.items() if bench == "scan_fwd_bwd" and variant.startswith("triton")]
    for cpu_variant in ("cpu-scan", "cpu-scan-1thread"):
        cpu_scan = ms.get(("scan_fwd_bwd", cpu_variant, "eager"))
        if cpu_scan and triton:
            print(f"Triton scan (best block) vs {cpu_variant}: {cpu_scan / min(triton):.1f}x faster (target >= 10x)")
    for mode in ("eager", "compiled"):
        hybrid = ms.get(("train_step", "qhyer-hybrid", mode))
        attention = ms.get(("train_step", "qhyer-attention", mode))
        if hybrid and attention:
            print(f"QHyer hybrid / attention-only step, {mode}: {hybrid / attention:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (compilation, allocator)")
    parser.add_argument("--out", type=Path, help="CSV path (default benchmarks/results/gpu_<date>.csv; "
                                                 "cpu_<date>.csv with --device cpu)")
    parser.add_argument("--no-compile", action="store_true", help="eager rows only")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of every path")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: --device cuda but torch sees no CUDA device (use --device cpu for the CPU mode)")
    device = torch.device(args.device)
    out = args.out or Path(__file__).parent / "results" / f"{'gpu' if device.type == 'cuda' else 'cpu'}_" \
                                                          f"{datetime.date.today().isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    triton_version = "" if importlib.util.find_spec("triton") is None else __import__("triton").__version__
    common = {"torch": torch.__version__, "triton": triton_version, "cpu_threads": torch.get_num_threads(),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else os.uname().machine}
    compile_modes = ["eager"] if args.no_compile else ["eager", "compiled"]
    print(f"bench_gpu: {common['device_name']}, torch {common['torch']}, triton {triton_version or 'absent'}, "
          f"{common['cpu_threads']} CPU threads, {args.repeats} timed repeats; writing {out}", flush=True)
    rows = []
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for row in itertools.chain(scan_rows(args, device), step_rows(args, device, compile_modes)):
            row = {**row, **common, "repeats": args.repeats}
            writer.writerow(row)
            handle.flush()
            rows.append(row)
            print(f"  {row['benchmark']} {row['variant']} {row['mode']}: {row['ms'] or row['status']}", flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
