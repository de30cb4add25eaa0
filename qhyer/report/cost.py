"""What a budget costs before it runs: GPU-hours and CPU-hours per stage (data, train, evaluate) and method.

    python -m qhyer.report cost --budget paper [--out results/cost_paper.csv]

Work comes from the budget (qhyer.runs, as the DAG plans it: the same studies, variants, methods, datasets, seeds,
updates per run and evaluation schedules; AntMaze only when its file is present, as in workflow/rules/common.smk).
Time per unit of work comes from the benchmark tables under benchmarks/results/:
  * train: ms per update per method at default (= `paper`) size, `cpu_step_times.csv` (benchmarks/bench_train_step.py,
    one thread, eager); on GPU budgets `gpu_*.csv` (benchmarks/bench_gpu.py) for the methods it measured, the other
    methods projected from their CPU time by the GPU/CPU ratio measured there — or, without any GPU table, by
    ASSUMED_GPU_SPEEDUP;
  * evaluate: ms per env step in one process with a batch of envs (`eval_step_times.csv`,
    benchmarks/bench_eval.py, a width-64 transformer as the policy), every episode run to its time limit (an upper
    bound: OGBench episodes end at the goal). A dataset not measured takes a measured dataset of its family, else the
    slowest measured one; the evaluate rule runs on the CPU (`python -m qhyer.evaluate` defaults to --device cpu);
  * data: seconds per generated row from the datasets' manifests (`wall_time_s` / rows) found under --manifests,
    matched by environment; generation runs on the CPU.
Every number says whether it was measured or projected, and how.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qhyer.data.registry import DatasetSpec, get_spec
from qhyer.errors import ConfigError, DataError
from qhyer.io import atomic_path
from qhyer.rollout.eval_env import eval_tasks
from qhyer.runs import STUDIES, eval_schedule, study_datasets, study_variants, train_steps, workflow_config

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG_DIR = ROOT / "workflow" / "config"
# ASSUMPTION (used only while no GPU table exists): a GPU update takes this fraction of the one-thread CPU update.
# The models are small (0.1-3M parameters), so a GPU step is launch-bound; 0.1 is a guess, not a measurement.
ASSUMED_GPU_SPEEDUP = 10.0
# ASSUMPTIONS of the SLURM time limits (the train and evaluate rules' `runtime`, from this estimate): x2 for
# the benchmarks' noise and for runs sharing a GPU; at least 15 min (queueing, start-up, data loading); at most 24 h,
# a common GPU-partition limit: a run still going then is TIMEOUT, resubmitted by `retries`, and resumes from its
# checkpoint.
TIME_LIMIT_SAFETY = 2.0
TIME_LIMIT_MINUTES = (15, 24 * 60)
# bench_gpu.py rows (`variant`) that time a method's default update
GPU_VARIANTS = {"qhyer": "qhyer-hybrid", "dt": "dt"}


@dataclass(frozen=True)
class Rate:
    ms: float      # milliseconds per unit of work (update, env step, generated row)
    source: str    # 'measured: ...' or 'projected: ...'


def data_dir_of(config: dict) -> Path:
    return Path(config["data_root"]) / config["budget"]


def dataset_present(spec: DatasetSpec, data_dir: Path) -> bool:
    """Regenerable, or its user-supplied file is there (AntMaze): the DAG's `available`."""
    from qhyer.data.d4rl import find_d4rl_file

    if spec.regenerable:
        return True
    try:
        find_d4rl_file(spec, data_dir)
    except DataError:
        return False
    return True


def planned_runs(config: dict, data_dir: Path) -> pd.DataFrame:
    """One row per training run the DAG plans (= one evaluate job each): identity, updates, evaluation work."""
    from qhyer.trainer import EvalConfig  # the schedule's own rule for which checkpoints are evaluated

    rows = []
    for study, spec_of_study in STUDIES.items():
        if spec_of_study.section and spec_of_study.section not in config:
            continue
        methods = spec_of_study.methods or config["methods"]
        for dataset in study_datasets(study, config):
            spec = get_spec(dataset)
            if not dataset_present(spec, data_dir):
                continue
            schedule = eval_schedule(dataset, config, study)
            horizon = min(config["eval"]["max_steps"] or spec.eval_max_steps, spec.eval_max_steps)
            for variant in study_variants(study, config):
                for method in methods:
                    steps = train_steps(study, method, dataset, config)
                    checkpoints = len(EvalConfig(**schedule).steps(steps))
                    episodes = checkpoints * schedule["episodes_per_task"] * len(eval_tasks(spec))
                    rows += [{"study": study, "variant": variant, "method": method, "dataset": spec.name,
                              "family": spec.family, "seed": seed, "steps": steps, "eval_episodes": episodes,
                              "eval_env_steps": episodes * horizon} for seed in config["seeds"]]
    return pd.DataFrame(rows)


def planned_data(config: dict, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset the DAG generates (those its runs use that can be regenerated): rows to generate."""
    data, rows = config["data"], []
    for name in runs["dataset"].unique():
        spec = get_spec(name)
        if not spec.regenerable:
            continue
        if spec.family == "ogbench":
            episodes = data["ogbench_episodes"] or spec.train_episodes
            generated = (episodes + episodes // 10) * data["ogbench_episode_length"]  # train + validation
        else:
            generated = data["maze2d_steps"] or spec.total_steps
        rows.append({"dataset": name, "env_id": spec.env_id, "family": spec.family, "rows": generated})
    return pd.DataFrame(rows, columns=["dataset", "env_id", "family", "rows"])


def _read_table(path: Path, columns: set[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"no {what} table at {path}", f"run the benchmark that writes it ({what})")
    table = pd.read_csv(path)
    if not columns <= set(table.columns):
        raise DataError(f"{path} lacks columns {sorted(columns - set(table.columns))}", f"rerun {what}")
    return table


def cpu_train_rates(path: Path) -> dict[str, Rate]:
    table = _read_table(path, {"method", "size", "mode", "ms_per_update", "torch_threads"},
                        "benchmarks/bench_train_step.py")
    rows = table[(table["size"] == "default") & (table["mode"] == "eager")]
    return {r.method: Rate(float(r.ms_per_update), f"measured: {path.name}, {r.torch_threads} thread(s), eager")
            for r in rows.itertuples()}


def latest_gpu_table(results: Path = RESULTS) -> Path | None:
    tables = sorted(results.glob("gpu_*.csv"))
    return tables[-1] if tables else None


def gpu_train_rates(cpu: dict[str, Rate], gpu_table: Path | None,
                    assumed_speedup: float = ASSUMED_GPU_SPEEDUP) -> dict[str, Rate]:
    """Measured GPU ms per update where the GPU table has the method; the others projected from their CPU time."""
    measured = {}
    if gpu_table is not None:
        table = _read_table(gpu_table, {"benchmark", "variant", "device", "mode", "ms", "status"},
                            "benchmarks/bench_gpu.py")
        ok = table[(table["benchmark"] == "train_step") & (table["device"] == "cuda") & (table["mode"] == "eager")
                   & (table["status"] == "ok")]
        if "precision" in ok:  # bench_gpu.py tables since train.precision: the budgets train in fp32
            ok = ok[ok["precision"] == "fp32"]
        for method, variant in GPU_VARIANTS.items():
            row = ok[ok["variant"] == variant]
            if len(row):
                measured[method] = Rate(float(row["ms"].iloc[0]), f"measured: {gpu_table.name}, eager")
    ratios = [measured[m].ms / cpu[m].ms for m in measured if m in cpu]
    if ratios:
        factor = sum(ratios) / len(ratios)
        how = f"projected: CPU time x {factor:.3g} (GPU/CPU ratio measured for {', '.join(sorted(measured))})"
    else:
        factor = 1 / assumed_speedup
        how = f"projected: CPU time / {assumed_speedup:g} (ASSUMPTION: no GPU table)"
    return {m: measured.get(m, Rate(rate.ms * factor, how)) for m, rate in cpu.items()}


def eval_rates(path: Path, datasets: list[str]) -> dict[str, Rate]:
    """ms per env step of each dataset: its own measurement, else its family's, else the slowest measured."""
    table = _read_table(path, {"dataset", "num_envs", "workers", "ms_per_env_step"}, "benchmarks/bench_eval.py")
    one_process = table[table["workers"] == 1]
    batched = one_process.loc[one_process.groupby("dataset")["num_envs"].idxmax()]
    measured = {r.dataset: Rate(float(r.ms_per_env_step), f"measured: {path.name}, {r.num_envs} envs, 1 process")
                for r in batched.itertuples()}
    if not measured:
        raise DataError(f"{path} has no one-process rows", "rerun benchmarks/bench_eval.py with --workers 1")
    slowest = max(measured, key=lambda d: measured[d].ms)
    rates = {}
    for name in datasets:
        family = [d for d in measured if get_spec(d).family == get_spec(name).family]
        source = name if name in measured else family[0] if family else slowest
        why = "same family" if family else "ASSUMPTION: the slowest measured dataset"
        rates[name] = (measured[name] if source == name
                       else Rate(measured[source].ms, f"projected: as {source} ({why})"))
    return rates


def data_rates(manifest_dirs: list[Path], data: pd.DataFrame) -> dict[str, Rate | None]:
    """Seconds per generated row of each dataset from generation manifests: its environment's, else projected
    from a measured environment of its family; None when its family has no manifest."""
    measured: dict[str, tuple[str, Rate]] = {}  # env_id -> (family, rate)
    for folder in manifest_dirs:
        for path in sorted(folder.rglob("*.manifest.json")) if folder.is_dir() else []:
            manifest = json.loads(path.read_text())
            rows = sum(manifest.get("transitions", {}).values())
            if manifest.get("wall_time_s") and rows:
                spec = get_spec(manifest["dataset"])
                measured.setdefault(spec.env_id, (spec.family, Rate(1000 * manifest["wall_time_s"] / rows,
                                                                    f"measured: {path} ({rows} rows; wall time)")))
    rates = {}
    for r in data.itertuples():
        family = [env for env, (fam, _) in measured.items() if fam == r.family]
        rates[r.dataset] = (measured[r.env_id][1] if r.env_id in measured
                            else Rate(measured[family[0]][1].ms, f"projected: as {family[0]} (same family)") if family
                            else None)
    return rates


def train_rates(runs: pd.DataFrame, on_gpu: bool, cpu_table: Path, gpu_table: Path | None,
                assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP) -> dict[str, Rate]:
    """ms per update of every method the runs use: CPU times, or GPU times (measured or projected) when `on_gpu`."""
    cpu = cpu_train_rates(cpu_table)
    missing = sorted(set(runs["method"]) - set(cpu))
    if missing:
        raise DataError(f"{cpu_table} has no default-size time for {', '.join(missing)}",
                        "rerun benchmarks/bench_train_step.py with every method")
    return gpu_train_rates(cpu, gpu_table, assumed_gpu_speedup) if on_gpu else cpu


def estimate(budget: str, config_dir: Path, cpu_table: Path, eval_table: Path, gpu_table: Path | None,
             manifest_dirs: list[Path], assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP
             ) -> tuple[pd.DataFrame, dict]:
    """Hours per stage and method (one row each): jobs, work, device, hours, and where the time per unit came from.
    Also returns the planned runs and data (for counts)."""
    config = workflow_config(config_dir, budget)
    runs = planned_runs(config, data_dir_of(config))
    if runs.empty:
        raise ConfigError(f"budget '{budget}' plans no runs")
    data = planned_data(config, runs)
    on_gpu = config["train"]["gpus"] > 0
    train = train_rates(runs, on_gpu, cpu_table, gpu_table, assumed_gpu_speedup)
    evals = eval_rates(eval_table, list(runs["dataset"].unique()))
    gen = data_rates(manifest_dirs, data)
    rows = []
    for method, group in runs.groupby("method", sort=False):
        rate = train[method]
        rows.append({"stage": "train", "method": method, "jobs": len(group), "work": int(group["steps"].sum()),
                     "unit": "updates", "device": "gpu" if on_gpu else "cpu",
                     "hours": group["steps"].sum() * rate.ms / 3.6e6, "source": rate.source})
        hours = sum(g["eval_env_steps"].sum() * evals[d].ms for d, g in group.groupby("dataset")) / 3.6e6
        sources = sorted({evals[d].source for d in group["dataset"]})
        rows.append({"stage": "evaluate", "method": method, "jobs": len(group),
                     "work": int(group["eval_env_steps"].sum()), "unit": "env steps (upper bound)", "device": "cpu",
                     "hours": hours, "source": "; ".join(sources)})
    for r in data.itertuples():
        rate = gen[r.dataset]
        rows.append({"stage": "data", "method": r.dataset, "jobs": 1, "work": int(r.rows), "unit": "rows",
                     "device": "cpu", "hours": r.rows * rate.ms / 3.6e6 if rate else float("nan"),
                     "source": rate.source if rate else "not measured: no manifest of this family found"})
    return pd.DataFrame(rows), {"runs": runs, "data": data, "config": config}


def job_time_limits(config: dict, results: Path = RESULTS) -> dict[tuple, dict[str, int]]:
    """SLURM time limit in minutes of each run's train and evaluate job, keyed by (study, variant, method, dataset,
    seed): the estimate of that job x TIME_LIMIT_SAFETY, clipped to TIME_LIMIT_MINUTES. `config` is the DAG's
    (budget merged with --config); train times are GPU times when the budget trains on GPUs."""
    runs = planned_runs(config, data_dir_of(config))
    if runs.empty:
        return {}
    train = train_rates(runs, config["train"]["gpus"] > 0, results / "cpu_step_times.csv", latest_gpu_table(results))
    evals = eval_rates(results / "eval_step_times.csv", list(runs["dataset"].unique()))
    low, high = TIME_LIMIT_MINUTES

    def minutes(ms: float) -> int:
        return int(min(max(math.ceil(TIME_LIMIT_SAFETY * ms / 60_000), low), high))

    return {(r.study, r.variant, r.method, r.dataset, r.seed): {
                "train": minutes(r.steps * train[r.method].ms),
                "evaluate": minutes(r.eval_env_steps * evals[r.dataset].ms)}
            for r in runs.itertuples()}


def render(table: pd.DataFrame, budget: str) -> str:
    """The estimate as text: per stage and method, totals per device, then where each time came from."""
    lines = [f"Cost estimate for budget '{budget}' (hours of one job at a time; jobs run in parallel on a cluster)",
             "", f"{'stage':9s} {'method/dataset':26s} {'jobs':>6s} {'work':>16s} {'device':>6s} {'hours':>10s}"]
    for r in table.itertuples():
        lines.append(f"{r.stage:9s} {r.method:26s} {r.jobs:6d} {r.work:16,d} {r.device:>6s} {r.hours:10.1f}")
    lines.append("")
    for (stage, device), hours in table.groupby(["stage", "device"], sort=False)["hours"].sum(min_count=1).items():
        lines.append(f"total {stage:9s} {device.upper()}-hours: {hours:10.1f}")
    for device, hours in table.groupby("device")["hours"].sum(min_count=1).items():
        lines.append(f"total {device.upper()}-hours: {hours:.1f}")
    lines += ["", "Where each time per unit came from:"]
    for stage, group in table.groupby("stage", sort=False):
        for source, methods in group.groupby("source", sort=False)["method"]:
            lines.append(f"  {stage} [{', '.join(methods)}]: {source}")
    lines.append("  evaluate: every episode to its time limit; the benchmark's policy (2-layer width-64 transformer) "
                 "for every method (ASSUMPTION: policy cost per step equal across methods)")
    if table["hours"].isna().any():
        lines.append("  totals leave out the rows without a measurement (hours 'nan')")
    return "\n".join(lines) + "\n"


def write_estimate(budget: str, out: Path | None = None, config_dir: Path = CONFIG_DIR,
                   cpu_table: Path = RESULTS / "cpu_step_times.csv", eval_table: Path = RESULTS / "eval_step_times.csv",
                   gpu_table: Path | None = None, manifest_dirs: list[Path] | None = None,
                   assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP) -> tuple[str, list[Path]]:
    """The CLI's work: the rendered estimate, and the CSV written when `out` is given. `gpu_table` defaults to
    the newest benchmarks/results/gpu_*.csv, `manifest_dirs` to the budget's data folder."""
    if assumed_gpu_speedup <= 0:
        raise ConfigError(f"the assumed GPU speed-up must be positive (got {assumed_gpu_speedup})")
    config = workflow_config(config_dir, budget)
    table, _ = estimate(budget, config_dir, cpu_table, eval_table, gpu_table or latest_gpu_table(),
                        manifest_dirs if manifest_dirs is not None else [data_dir_of(config)], assumed_gpu_speedup)
    if not out:
        return render(table, budget), []
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return render(table, budget), [out]
