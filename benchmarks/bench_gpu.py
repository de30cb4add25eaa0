"""GPU table: ms per training update (QHyer hybrid and attention-only, DT; eager fp32 and bf16, torch.compile and
torch.compile with CUDA graphs), the selective scan (Triton on CUDA vs the CPU scan), and N runs sharing one device.
Run by benchmarks/device_check.sh on the GPU machine; `--device cpu --tiny` is the CPU smoke mode
tests/test_device_check.py runs.

    python benchmarks/bench_gpu.py [--device cuda] [--repeats 20] [--out benchmarks/results/gpu_<date>.csv]
        [--only scan step shared] [--append] [--no-compile] [--tiny] [--shared-runs 1 5] [--shared-updates 200]

Sizes: each method's config defaults, which the `paper` budget (workflow/config/budgets/paper.yaml) leaves as
they are (QHyer: batch 64, K = 20, 3 blocks, width 128, N = 16, nf critic; DT: batch 64, K = 20, 3 layers, width
128), on synthetic cube-single-sized data (benchmarks/bench_train_step.py), so the numbers measure the update alone.
Scan: forward + backward at (b 64, L 60, d_inner 256, N 16), i.e. one Mamba layer at the default training shape:
the CPU scan on all of this machine's cores and on one thread; on CUDA the PyTorch scan and Triton at 8, 16 and 32
channels per program (scan_triton.BLOCK_D).
Step modes (column `mode`, with `precision`), exactly what the trainer runs for train.compile / train.compile_mode /
train.precision (qhyer.agent.Agent.wrap_loss_functions): eager; eager with bf16 autocast; compiled = `torch.compile`
of the agent's loss functions (model, critic and losses; backward compiled with them, the optimizer step eager);
reduce-overhead = the same compiled as CUDA graphs (on a CPU: the default mode again, so only its code path is run).
Shared (`shared_gpu` rows): N runs on one device, each its own spawned process as separate train jobs sharing a GPU are,
each doing `--shared-updates` QHyer-hybrid updates then as many DT updates (eager fp32, batches sampled on the CPU and
copied per update as the trainer does; CPU threads: the cores / the largest N), started together after every process
has built and warmed up its agents. `ms` is the wall time from the common start to the last process's end; issue
13's target is N = 5 within 1.5x N = 1.
A failure is a row with its status, not an abort. Each step row is the median of `--repeats` timed calls after
warm-up, appended to the CSV as soon as it is measured, so a stage killed by its timeout keeps the rows before it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import itertools
import multiprocessing
import os
import statistics
import threading
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

COLUMNS = ["benchmark", "variant", "device", "mode", "precision", "runs", "size", "params", "ms", "repeats", "status",
           "torch", "triton", "device_name", "cpu_threads"]
STEPS = [("qhyer-hybrid", "qhyer", {"backbone": "hybrid"}), ("qhyer-attention", "qhyer", {"backbone": "attention"}),
         ("dt", "dt", {})]
SHARED_STEPS = [step for step in STEPS if step[0] in ("qhyer-hybrid", "dt")]
# (mode, precision) of the step rows in the order measured: the cheap eager rows first, so a stage timeout during
# compilation keeps them; then CUDA graphs (issue 13 asks for them where the step is launch-bound), then compiled
STEP_MODES = [("eager", "fp32"), ("eager", "bf16"), ("reduce-overhead", "fp32"), ("compiled", "fp32")]
BENCHMARKS = ("scan", "step", "shared")
COMPILE_MODE = {"eager": None, "compiled": "default", "reduce-overhead": "reduce-overhead"}
WARMUP_CALLS = 3  # compiled steps: cudagraph trees warm up, record, then replay; shared runs: warm-up updates
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


def measured(row: dict, fn: Callable[[], Callable[[], object]], device: torch.device, args, warmup: int = 0) -> dict:
    """`row` with the median ms of the callable that `fn` builds, or with the failure as its status: a compile or
    kernel failure is a result here, not a crash that would lose the rows after it."""
    try:
        return {**row, "ms": median_ms(fn(), device, args.repeats, max(warmup, args.warmup)), "status": "ok"}
    except Exception as error:
        return {**row, "ms": "", "status": failure(error)}


def failure(error: BaseException) -> str:
    return f"failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def cycling_update(agent, batches: list[dict[str, torch.Tensor]]) -> Callable[[], dict[str, float]]:
    cycle = itertools.cycle(batches)
    return lambda: agent.update(next(cycle), 0)


def scan_fwd_bwd(scan: Callable, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> Callable[[], object]:
    return lambda: torch.autograd.grad(scan(*inputs), inputs, grad_out)


def build_agent(method: str, overrides: dict, device: torch.device, tiny: bool):
    """(agent on `device`, its sampler over the synthetic data, a size description)."""
    config_cls, agent_cls = method_classes(method)
    dataset = synthetic_dataset()
    spec = get_spec(dataset.name)
    if tiny:
        overrides = {**overrides, **TINY_SIZES, **(TINY_QHYER if method == "qhyer" else {})}
    cfg = config_cls(**overrides).for_family(dataset_family(spec)).for_budget(100_000)
    torch.manual_seed(0)
    agent = agent_cls(cfg, DataInfo.from_dataset(spec, dataset, cfg.goal_rep)).to(device)
    size = f"batch {cfg.batch_size}, K {cfg.context_len}, {cfg.n_layers} layers, width {cfg.embed_dim}"
    return agent, agent.make_sampler(dataset, seed=0), size


def trainable_params(agent) -> int:
    return sum(p.numel() for p in agent.parameters() if p.requires_grad)


def step_rows(args, device: torch.device, step_modes: list[tuple[str, str]]):
    """One row per (method, mode, precision): ms per `agent.update` on pre-sampled batches already on the device."""
    for mode, precision in step_modes:
        for variant, method, overrides in STEPS:
            agent, sampler, size = build_agent(method, overrides, device, args.tiny)
            batches = [{k: v.to(device) for k, v in sampler.sample(agent.cfg.batch_size).items()} for _ in range(4)]
            row = {"benchmark": "train_step", "variant": variant, "device": device.type, "mode": mode,
                   "precision": precision, "runs": 1, "size": size, "params": trainable_params(agent)}

            def build(agent=agent, batches=batches, mode=mode, precision=precision):
                agent.wrap_loss_functions(precision, COMPILE_MODE[mode])
                return cycling_update(agent, batches)
            yield measured(row, build, device, args, warmup=0 if mode == "eager" else WARMUP_CALLS)


def shared_worker(device_name: str, tiny: bool, updates: int, threads: int, barrier, results) -> None:
    """One run of the shared benchmark (a spawned process): build and warm up its agents, wait for the common start,
    then `updates` updates of each SHARED_STEPS method; puts its seconds (or its failure) on `results`."""
    try:
        torch.set_num_threads(threads)
        device = torch.device(device_name)
        runs = [build_agent(method, overrides, device, tiny)[:2] for _, method, overrides in SHARED_STEPS]

        def train(agent, sampler, steps: int) -> None:
            for step in range(steps):  # the trainer's loop: sample on the CPU, copy, update
                batch = sampler.sample(agent.cfg.batch_size)
                agent.update({k: v.to(device, non_blocking=True) for k, v in batch.items()}, step)

        for agent, sampler in runs:
            train(agent, sampler, WARMUP_CALLS)
        synchronize(device)
        barrier.wait()
        start = time.perf_counter()
        for agent, sampler in runs:
            train(agent, sampler, updates)
        synchronize(device)
        results.put(time.perf_counter() - start)
    except threading.BrokenBarrierError:  # another run failed; it reported why
        pass
    except Exception as error:
        results.put(failure(error))
        barrier.abort()


def shared_wall_ms(runs: int, args, device: torch.device, threads: int) -> float:
    """Wall ms from the common start until the last of `runs` concurrent shared_worker processes finished."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(runs + 1), context.Queue()
    workers = [context.Process(target=shared_worker, args=(device.type, args.tiny, args.shared_updates, threads,
                                                           barrier, results), daemon=True) for _ in range(runs)]
    for worker in workers:
        worker.start()
    try:
        try:
            barrier.wait(timeout=args.shared_timeout)  # every run built and warmed up
        except threading.BrokenBarrierError:
            raise RuntimeError(results.get(timeout=10)) from None
        start = time.perf_counter()
        outcomes = [results.get(timeout=args.shared_timeout) for _ in range(runs)]
        wall = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if errors:
        raise RuntimeError(errors[0])
    return 1000 * wall


def shared_rows(args, device: torch.device):
    """One row per N in --shared-runs: N runs sharing `device`. Every run gets the CPU threads of the largest N's share
    of the cores in every row, so rows differ only in how many runs share the device (and more threads than cores
    would stall torch's thread pool)."""
    cpu = torch.device("cpu")
    agents = [build_agent(method, overrides, cpu, args.tiny)[0] for _, method, overrides in SHARED_STEPS]
    size = (f"{' + '.join(variant for variant, _, _ in SHARED_STEPS)}, {args.shared_updates} updates each, "
            f"{'tiny' if args.tiny else 'default'} sizes")
    threads = max(1, (os.cpu_count() or 1) // max(args.shared_runs))
    for runs in args.shared_runs:
        row = {"benchmark": "shared_gpu", "variant": f"{runs} runs", "device": device.type, "mode": "eager",
               "precision": "fp32", "runs": runs, "size": size, "params": sum(map(trainable_params, agents)),
               "repeats": args.shared_updates, "cpu_threads": threads}
        try:
            yield {**row, "ms": shared_wall_ms(runs, args, device, threads), "status": "ok"}
        except Exception as error:
            yield {**row, "ms": "", "status": failure(error)}


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
        row = {"benchmark": "scan_fwd_bwd", "variant": variant, "device": where.type, "mode": "eager",
               "precision": "fp32", "runs": 1, "size": size, "params": ""}
        torch.set_num_threads(1 if variant.endswith("1thread") else all_threads)
        yield measured(row, lambda scan=scan, where=where: scan_fwd_bwd(scan, scan_inputs(shape, where),
                                                                        torch.ones(shape[:3], device=where)),
                       where, args)
    torch.set_num_threads(all_threads)


def print_table(rows: list[dict]) -> None:
    print(f"{'benchmark':13s} {'variant':16s} {'device':6s} {'mode':15s} {'prec':4s} {'params':>9s} {'ms':>9s}  status")
    for r in rows:
        ms = f"{r['ms']:9.2f}" if r["ms"] != "" else f"{'-':>9s}"
        params = f"{r['params']:9,d}" if r["params"] != "" else ""
        print(f"{r['benchmark']:13s} {r['variant']:16s} {r['device']:6s} {r['mode']:15s} {r['precision']:4s} "
              f"{params:>9s} {ms}  {r['status']}")
    ms = {(r["benchmark"], r["variant"], r["mode"], r["precision"]): r["ms"] for r in rows if r["ms"] != ""}
    triton = [v for (bench, variant, *_), v in ms.items() if bench == "scan_fwd_bwd" and variant.startswith("triton")]
    for cpu_variant in ("cpu-scan", "cpu-scan-1thread"):
        cpu_scan = ms.get(("scan_fwd_bwd", cpu_variant, "eager", "fp32"))
        if cpu_scan and triton:
            print(f"Triton scan (best block) vs {cpu_variant}: {cpu_scan / min(triton):.1f}x faster (target >= 10x)")
    for mode in ("eager", "compiled", "reduce-overhead"):
        hybrid = ms.get(("train_step", "qhyer-hybrid", mode, "fp32"))
        attention = ms.get(("train_step", "qhyer-attention", mode, "fp32"))
        if hybrid and attention:
            print(f"QHyer hybrid / attention-only step, {mode}: {hybrid / attention:.2f}x")
    for variant, _, _ in STEPS:
        eager = ms.get(("train_step", variant, "eager", "fp32"))
        for mode, precision, what in (("eager", "bf16", "bf16 / fp32 (eager)"),
                                      ("compiled", "fp32", "compiled / eager"),
                                      ("reduce-overhead", "fp32", "CUDA graphs (reduce-overhead) / eager")):
            other = ms.get(("train_step", variant, mode, precision))
            if eager and other:
                print(f"{variant} step, {what}: {other / eager:.2f}x")
    alone = {r["device"]: r["ms"] for r in rows if r["benchmark"] == "shared_gpu" and r["runs"] == 1 and r["ms"] != ""}
    for r in rows:
        if r["benchmark"] == "shared_gpu" and r["runs"] > 1 and r["ms"] != "" and r["device"] in alone:
            print(f"{r['runs']} runs sharing one {r['device']} device: {r['ms'] / alone[r['device']]:.2f}x the wall "
                  f"time of one run (target for 5 runs on a GPU: <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (compilation, allocator)")
    parser.add_argument("--out", type=Path, help="CSV path (default benchmarks/results/gpu_<date>.csv; "
                                                 "cpu_<date>.csv with --device cpu)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS),
                        help="which benchmarks to run (default: all)")
    parser.add_argument("--append", action="store_true", help="append to --out (header only when it is new)")
    parser.add_argument("--no-compile", action="store_true", help="eager step rows only (fp32 and bf16)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of every path")
    parser.add_argument("--shared-runs", type=int, nargs="+", help="N runs sharing the device, each N a row "
                                                                  "(default: 1 5; with --tiny 1 2)")
    parser.add_argument("--shared-updates", type=int, help="updates per method per run (default 200; --tiny 3)")
    parser.add_argument("--shared-timeout", type=float, default=300, help="seconds to wait for the runs to start "
                                                                          "and again for them to finish")
    args = parser.parse_args()
    args.shared_runs = args.shared_runs or ([1, 2] if args.tiny else [1, 5])
    args.shared_updates = args.shared_updates or (3 if args.tiny else 200)
    if min(args.shared_runs) < 1 or args.shared_updates < 1:
        raise SystemExit("bench_gpu: --shared-runs and --shared-updates must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: --device cuda but torch sees no CUDA device (use --device cpu for the CPU mode)")
    device = torch.device(args.device)
    out = args.out or Path(__file__).parent / "results" / f"{'gpu' if device.type == 'cuda' else 'cpu'}_" \
                                                          f"{datetime.date.today().isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    triton_version = "" if importlib.util.find_spec("triton") is None else __import__("triton").__version__
    common = {"torch": torch.__version__, "triton": triton_version, "cpu_threads": torch.get_num_threads(),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else os.uname().machine}
    step_modes = [(mode, precision) for mode, precision in STEP_MODES if mode == "eager" or not args.no_compile]
    benchmarks = {"scan": lambda: scan_rows(args, device), "step": lambda: step_rows(args, device, step_modes),
                  "shared": lambda: shared_rows(args, device)}
    print(f"bench_gpu: {common['device_name']}, torch {common['torch']}, triton {triton_version or 'absent'}, "
          f"{common['cpu_threads']} CPU threads, {args.repeats} timed repeats; writing {out}", flush=True)
    rows = []
    new_file = not (args.append and out.exists() and out.stat().st_size)
    with out.open("w" if new_file else "a", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        if new_file:
            writer.writeheader()
        for row in itertools.chain.from_iterable(benchmarks[name]() for name in BENCHMARKS if name in args.only):
            row = {**common, "repeats": args.repeats, **row}
            writer.writerow(row)
            handle.flush()
            rows.append(row)
            print(f"  {row['benchmark']} {row['variant']} {row['mode']} {row['precision']}: "
                  f"{row['ms'] or row['status']}", flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
