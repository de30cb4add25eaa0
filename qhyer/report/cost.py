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
import yaml

from qhyer.data.registry import DatasetSpec, get_spec
from qhyer.errors import ConfigError, DataError
from qhyer.io import atomic_path
from qhyer.methods import runs_on
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
# checkpoint. A train job longer than that gets as many attempts as its projected time x the same safety factor needs
# (train_retries: the train rule's `retries`), plus the SLURM profile's `retries` as spare for pre-emptions and node
# failures.
TIME_LIMIT_SAFETY = 2.0
TIME_LIMIT_MINUTES = (15, 24 * 60)
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
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


def run_work(config: dict, study: str, variant: str, method: str, dataset: str) -> dict:
    """One training run's identity (without its seed) and work: updates, evaluated episodes and env steps."""
    from qhyer.run_folder import EvalConfig  # the schedule's own rule for which checkpoints are evaluated

    spec = get_spec(dataset)
    horizon = min(config["eval"]["max_steps"] or spec.eval_max_steps, spec.eval_max_steps)
    schedule = eval_schedule(dataset, config, study, method)
    steps = train_steps(study, method, dataset, config)
    episodes = len(EvalConfig(**schedule).steps(steps)) * schedule["episodes_per_task"] * len(eval_tasks(spec))
    return {"study": study, "variant": variant, "method": method, "dataset": spec.name, "family": spec.family,
            "steps": steps, "eval_episodes": episodes, "eval_env_steps": episodes * horizon}


def planned_runs(config: dict, data_dir: Path) -> pd.DataFrame:
    """One row per training run the DAG plans (= one evaluate job each): identity, updates, evaluation work."""
    rows = []
    for study, spec_of_study in STUDIES.items():
        if spec_of_study.section and spec_of_study.section not in config:
            continue
        methods = spec_of_study.methods or config["methods"]
        for dataset in study_datasets(study, config):
            if not dataset_present(get_spec(dataset), data_dir):
                continue
            for variant in study_variants(study, config):
                for method in [m for m in methods if runs_on(m, get_spec(dataset).family)]:
                    work = run_work(config, study, variant, method, dataset)
                    rows += [{**work, "seed": seed} for seed in config["seeds"]]
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


def generation_rates(path: Path) -> dict[str, tuple[str, Rate]]:
    """{env_id: (family, ms per row)} of the generation benchmark's one-worker rows (docs/performance.md's
    measurements of benchmarks/bench_generation.py, transcribed with their source into `generation_rates.csv`)."""
    table = _read_table(path, {"dataset", "workers", "rows_per_s", "source"}, "benchmarks/bench_generation.py")
    return {get_spec(r.dataset).env_id: (get_spec(r.dataset).family,
                                         Rate(1000 / r.rows_per_s, f"projected: generation benchmark, {r.source}"))
            for r in table[table["workers"] == 1].itertuples()}


def data_rates(manifest_dirs: list[Path], data: pd.DataFrame, bench_table: Path | None = None) -> dict[str, Rate]:
    """Seconds per generated row of each dataset from generation manifests: its environment's, else projected
    from a measured environment of its family; without a manifest of its family, from the generation benchmark
    (`bench_table`: its environment's, else its family's, else the slowest; labelled projected)."""
    measured: dict[str, tuple[str, Rate]] = {}  # env_id -> (family, rate)
    for folder in manifest_dirs:
        for path in sorted(folder.rglob("*.manifest.json")) if folder.is_dir() else []:
            manifest = json.loads(path.read_text())
            rows = sum(manifest.get("transitions", {}).values())
            if manifest.get("wall_time_s") and rows:
                spec = get_spec(manifest["dataset"])
                measured.setdefault(spec.env_id, (spec.family, Rate(1000 * manifest["wall_time_s"] / rows,
                                                                    f"measured: {path} ({rows} rows; wall time)")))
    benchmark = generation_rates(bench_table or RESULTS / "generation_rates.csv")
    rates = {}
    for r in data.itertuples():
        family = [env for env, (fam, _) in measured.items() if fam == r.family]
        if r.env_id in measured:
            rates[r.dataset] = measured[r.env_id][1]
        elif family:
            rates[r.dataset] = Rate(measured[family[0]][1].ms, f"projected: as {family[0]} (same family)")
        elif r.env_id in benchmark:
            rates[r.dataset] = benchmark[r.env_id][1]
        else:
            same = [env for env, (fam, _) in benchmark.items() if fam == r.family]
            source = same[0] if same else max(benchmark, key=lambda env: benchmark[env][1].ms)
            why = "same family" if same else "ASSUMPTION: the slowest benchmarked environment"
            rates[r.dataset] = Rate(benchmark[source][1].ms,
                                    f"{benchmark[source][1].source}; as {source} ({why})")
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


def hours_table(runs: pd.DataFrame, data: pd.DataFrame, on_gpu: bool, train: dict[str, Rate],
                evals: dict[str, Rate], gen: dict[str, Rate]) -> pd.DataFrame:
    """Hours per stage and method (one row each): jobs, work, device, hours, and where the time per unit came from.
    `runs`: one row per run configuration with its work per seed and `seeds` (a count; an expectation may be
    fractional)."""
    rows = []
    for method, group in runs.groupby("method", sort=False):
        rate, seeds = train[method], group["seeds"]
        updates = (group["steps"] * seeds).sum()
        rows.append({"stage": "train", "method": method, "jobs": seeds.sum(), "work": updates, "unit": "updates",
                     "device": "gpu" if on_gpu else "cpu", "hours": updates * rate.ms / 3.6e6, "source": rate.source})
        hours = sum((g["eval_env_steps"] * g["seeds"]).sum() * evals[d].ms for d, g in group.groupby("dataset")) / 3.6e6
        rows.append({"stage": "evaluate", "method": method, "jobs": seeds.sum(),
                     "work": (group["eval_env_steps"] * seeds).sum(), "unit": "env steps (upper bound)",
                     "device": "cpu", "hours": hours,
                     "source": "; ".join(sorted({evals[d].source for d in group["dataset"]}))})
    for r in data.itertuples():
        rate = gen[r.dataset]
        rows.append({"stage": "data", "method": r.dataset, "jobs": 1, "work": r.rows, "unit": "rows",
                     "device": "cpu", "hours": r.rows * rate.ms / 3.6e6, "source": rate.source})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Tables:
    """Where the times per unit come from (benchmark tables and generation manifests)."""

    cpu: Path = RESULTS / "cpu_step_times.csv"
    eval: Path = RESULTS / "eval_step_times.csv"
    gpu: Path | None = None  # None: the newest benchmarks/results/gpu_*.csv, if any
    manifests: tuple[Path, ...] | None = None  # None: the budget's data folder
    generation: Path = RESULTS / "generation_rates.csv"
    assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP


def _rates(runs: pd.DataFrame, config: dict, tables: Tables) -> tuple[pd.DataFrame, dict, dict, dict]:
    data = planned_data(config, runs)
    on_gpu = config["train"]["gpus"] > 0
    train = train_rates(runs, on_gpu, tables.cpu, tables.gpu or latest_gpu_table(), tables.assumed_gpu_speedup)
    evals = eval_rates(tables.eval, list(runs["dataset"].unique()))
    manifests = list(tables.manifests) if tables.manifests is not None else [data_dir_of(config)]
    return data, train, evals, data_rates(manifests, data, tables.generation)


def estimate(budget: str, config_dir: Path, cpu_table: Path, eval_table: Path, gpu_table: Path | None,
             manifest_dirs: list[Path], assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP
             ) -> tuple[pd.DataFrame, dict]:
    """Hours per stage and method of the budget's fixed plan (`hours_table`); also returns the planned runs and
    data (for counts)."""
    config = workflow_config(config_dir, budget)
    runs = planned_runs(config, data_dir_of(config))
    if runs.empty:
        raise ConfigError(f"budget '{budget}' plans no runs")
    tables = Tables(cpu_table, eval_table, gpu_table, tuple(manifest_dirs), assumed_gpu_speedup=assumed_gpu_speedup)
    runs = runs.assign(seeds=1)
    data, train, evals, gen = _rates(runs, config, tables)
    return hours_table(runs, data, config["train"]["gpus"] > 0, train, evals, gen), {"runs": runs, "data": data,
                                                                                    "config": config}


def slurm_attempts(profile: Path = SLURM_PROFILE) -> int:
    """Attempts a SLURM job gets: 1 + the profile's `retries` (each resumes from the run's checkpoint)."""
    return 1 + int(yaml.safe_load(profile.read_text()).get("retries", 0))


def _train_minutes(runs: pd.DataFrame, config: dict, results: Path) -> dict[tuple, tuple[float, float]]:
    """{(study, variant, method, dataset): (train ms, evaluate ms)} of one run (any seed)."""
    train = train_rates(runs, config["train"]["gpus"] > 0, results / "cpu_step_times.csv", latest_gpu_table(results))
    evals = eval_rates(results / "eval_step_times.csv", list(runs["dataset"].unique()))
    return {(r.study, r.variant, r.method, r.dataset): (r.steps * train[r.method].ms,
                                                         r.eval_env_steps * evals[r.dataset].ms)
            for r in runs.itertuples()}


def _limit(ms: float) -> int:
    low, high = TIME_LIMIT_MINUTES
    return int(min(max(math.ceil(TIME_LIMIT_SAFETY * ms / 60_000), low), high))


def job_time_limits(config: dict, results: Path = RESULTS) -> dict[tuple, dict[str, int]]:
    """SLURM time limit in minutes of each run's train and evaluate job, keyed by (study, variant, method, dataset)
    (every seed alike): the estimate of that job x TIME_LIMIT_SAFETY, clipped to TIME_LIMIT_MINUTES. `config` is
    the DAG's (budget merged with --config); train times are GPU times when the budget trains on GPUs."""
    runs = planned_runs(config, data_dir_of(config))
    if runs.empty:
        return {}
    return {key: {"train": _limit(train), "evaluate": _limit(evaluate)}
            for key, (train, evaluate) in _train_minutes(runs, config, results).items()}


def attempts_needed(train_ms: float, limit_minutes: int) -> int:
    """Attempts a train job needs at `limit_minutes` each to cover its projected time x TIME_LIMIT_SAFETY (the
    margin a job that fits one limit has): each attempt resumes from the checkpoint the previous one wrote on
    SIGTERM (workflow/profiles/slurm: --signal=TERM@180)."""
    return max(1, math.ceil(TIME_LIMIT_SAFETY * train_ms / 60_000 / limit_minutes))


def train_resubmission(config: dict, results: Path = RESULTS, profile: Path = SLURM_PROFILE) -> dict:
    """How often the train rule resubmits a job (workflow/rules/train.smk `retries`), from the DAG's plan: `retries`
    None while every planned train job fits one time limit (the rule then takes --retries, the profile's, as before);
    else the attempts the longest job needs - 1 + the profile's retries (spare). One number for every job of the
    rule: Snakemake 9 takes a rule's `retries` as an int >= 0, not a function of the job (snakemake/workflow.py,
    `Retries values have to be integers >= 0`), and a rule's own value, 0 included, replaces --retries
    (snakemake/rules.py, Rule.restart_times; the directive: Snakemake PR #1649, a rule's 0 kept: PR #2053).
    Also: `needed`, `longest_hours`, `limit_hours` of the longest job, `spare`."""
    spare = slurm_attempts(profile) - 1
    runs = planned_runs(config, data_dir_of(config))
    train = max((ms for ms, _ in _train_minutes(runs, config, results).values()), default=0.0)
    needed = attempts_needed(train, _limit(train))
    return {"retries": None if needed == 1 else needed - 1 + spare, "needed": needed, "spare": spare,
            "longest_hours": train / 3.6e6, "limit_hours": _limit(train) / 60}


def train_retries(config: dict, results: Path = RESULTS) -> int | None:
    """The train rule's `retries` (train_resubmission)."""
    return train_resubmission(config, results)["retries"]


def train_attempts(config: dict, results: Path = RESULTS) -> int:
    """Attempts a train job of the DAG gets on SLURM: 1 + the rule's retries, else the profile's."""
    retries = train_retries(config, results)
    return 1 + retries if retries is not None else slurm_attempts()


def unfinishable_jobs(config: dict, runs: pd.DataFrame, results: Path = RESULTS,
                      attempts: int | None = None) -> pd.DataFrame:
    """The train jobs whose projected time x TIME_LIMIT_SAFETY exceeds their time limit x attempts (default: the
    attempts the train rule gives, train_attempts), so they could not finish on SLURM: one row per run
    configuration with its projected hours, limit and the attempts it would need."""
    attempts = attempts or train_attempts(config, results)
    rows = []
    for (study, variant, method, dataset), (train, _) in _train_minutes(runs, config, results).items():
        limit = _limit(train)
        if attempts_needed(train, limit) > attempts:
            rows.append({"study": study, "variant": variant, "method": method, "dataset": dataset,
                         "projected_hours": train / 3.6e6, "limit_hours": limit / 60, "attempts": attempts,
                         "attempts_needed": attempts_needed(train, limit)})
    return pd.DataFrame(rows, columns=["study", "variant", "method", "dataset", "projected_hours", "limit_hours",
                                       "attempts", "attempts_needed"])


def render(table: pd.DataFrame, budget: str) -> str:
    """The estimate as text: per stage and method, totals per device, then where each time came from."""
    lines = [f"Cost estimate for budget '{budget}' (hours of one job at a time; jobs run in parallel on a cluster)",
             "", f"{'stage':9s} {'method/dataset':26s} {'jobs':>6s} {'work':>16s} {'device':>6s} {'hours':>10s}"]
    for r in table.itertuples():
        lines.append(f"{r.stage:9s} {r.method:26s} {r.jobs:6,.0f} {r.work:16,.0f} {r.device:>6s} {r.hours:10.1f}")
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
    return "\n".join(lines) + "\n"


def resubmission_line(config: dict, results: Path = RESULTS) -> str:
    """What the train rule's `retries` will be, and why (train_resubmission)."""
    info = train_resubmission(config, results)
    if info["retries"] is None:
        return (f"SLURM resubmission: every train job fits one time limit (the longest {info['longest_hours']:.1f} h "
                f"projected); train jobs take --retries (the SLURM profile's: {info['spare']}).")
    return (f"SLURM resubmission: train jobs get up to {info['retries'] + 1} attempts (the train rule's `retries` "
            f"{info['retries']}): the longest, {info['longest_hours']:.1f} h projected, needs {info['needed']} "
            f"attempts of its {info['limit_hours']:.0f} h limit for its time x {TIME_LIMIT_SAFETY:g}, each resuming "
            f"from its checkpoint, + {info['spare']} spare (the profile's retries).")


def unfinishable_lines(jobs: pd.DataFrame) -> list[str]:
    """The flag for train jobs that cannot finish within their time limit x attempts (empty when none)."""
    if jobs.empty:
        return []
    lines = [f"WARNING: {len(jobs)} train job configuration(s) cannot finish on SLURM: projected time x "
             f"{TIME_LIMIT_SAFETY:g} > time limit x {jobs['attempts'].iloc[0]} attempts (each attempt resumes from "
             "the checkpoint). Raise the attempts (the train rule's `retries`) or the limit:"]
    lines += [f"  {r.study}/{r.variant}/{r.method}/{r.dataset}: {r.projected_hours:.1f} h projected, limit "
              f"{r.limit_hours:.0f} h, {r.attempts_needed} attempts needed" for r in jobs.itertuples()]
    return lines


# ASSUMPTIONS of the staged plan's expected cost: every selected claim is true (the card's number is the truth, an
# ordering's differences one tolerance above 0), seed scores normal with this between-seed sd in tolerances. The
# seeds a claim type takes then come from the staged design's simulation (verdicts.simulate_sequential); a run
# shared by claims takes the most seeds any of them expects (the expectation of a maximum is larger: an
# approximation). Worst case: every claim to max_seeds.
VERIFY_COST_SD = 1.0
VERIFY_COST_EXPERIMENTS = 2000


def expected_seeds(design, sd: float = VERIFY_COST_SD, experiments: int | None = None) -> dict[str, float]:
    """{claim type: mean seeds per method and dataset at which the staged design stops, the claim true}."""
    from qhyer.report import verdicts

    table = verdicts.simulate_sequential(design, distributions=["normal"], sds=[sd],
                                         experiments=experiments or VERIFY_COST_EXPERIMENTS)
    staged = table[table["design"] == "staged"].set_index("claim")
    return {claim: float(staged.loc[claim, "seeds_true_mean"]) for claim in staged.index}


def verify_runs(config: dict, plans: dict, seeds_of_claim: dict[str, float]) -> pd.DataFrame:
    """One row per run configuration of the plans: work per seed and `seeds`, the most any claim using it takes."""
    seeds: dict[tuple, float] = {}
    for claim, claim_plan in plans.items():
        for key in claim_plan.runs:
            seeds[key] = max(seeds.get(key, 0.0), seeds_of_claim[claim])
    return pd.DataFrame([{**run_work(config, *key), "seeds": n} for key, n in seeds.items()],
                        columns=["study", "variant", "method", "dataset", "family", "steps", "eval_episodes",
                                 "eval_env_steps", "seeds"])


def _totals(table: pd.DataFrame) -> dict[str, float]:
    by_stage = table.groupby("stage")["hours"].sum()
    return {stage: float(by_stage.get(stage, 0.0)) for stage in ("train", "evaluate", "data")}


def estimate_verify(budget: str, patterns: list[str] | None = None, config_dir: Path = CONFIG_DIR,
                    tables: Tables = Tables(), sd: float = VERIFY_COST_SD,
                    experiments: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Hours of the staged `verify` plan of the selected claims (expected and worst case, baselines re-run and
    published), next to the budget's fixed plan. One row per plan: seed-runs, train/evaluate/data hours."""
    from qhyer.report import claims as claims_file
    from qhyer.report import plan, verdicts

    config = workflow_config(config_dir, budget)
    verify = config["verify"]
    design = verdicts.SequentialDesign(verify["first_seeds"], verify["step_seeds"], verify["max_seeds"])
    doc = claims_file.load_claims(ROOT / verify["claims_file"])
    patterns = plan.claims_of(patterns or config.get("claims"))
    per_type = expected_seeds(design, sd, experiments)
    unknown = sorted({c["type"] for c in doc["claims"]} - set(per_type) - {"unmeasured"})
    if unknown:
        raise ConfigError(f"the staged design's simulation has no claim type {', '.join(unknown)}",
                          "add it to verdicts.simulate_sequential")
    fixed = planned_runs(config, data_dir_of(config)).assign(seeds=1)
    rows, details = [], {}
    runs_by_plan = {f"fixed '{budget}' ({len(config['seeds'])} seeds, every run)": fixed}
    for baselines in ("rerun", "published"):
        plans = plan.plan_claims(doc, config, patterns, plan.load_summaries(baselines, ROOT / verify["published_file"]))
        types = {c["id"]: c["type"] for c in doc["claims"]}
        expected = {c: per_type[types[c]] for c, p in plans.items() if p.runs}
        worst = {c: float(design.max_seeds) for c in expected}
        runs_by_plan[f"verify, baselines {baselines}, expected"] = verify_runs(config, plans, expected)
        runs_by_plan[f"verify, baselines {baselines}, worst case"] = verify_runs(config, plans, worst)
        details[baselines] = plans
    on_gpu = config["train"]["gpus"] > 0
    for name, runs in runs_by_plan.items():
        if runs.empty:
            rows.append({"plan": name, "run_configs": 0, "seed_runs": 0.0, "train": 0.0, "evaluate": 0.0, "data": 0.0})
            continue
        data, train, evals, gen = _rates(runs, config, tables)
        table = hours_table(runs, data, on_gpu, train, evals, gen)
        rows.append({"plan": name, "run_configs": len(runs), "seed_runs": float(runs["seeds"].sum()),
                     **_totals(table)})
    fixed_name, staged_name = list(runs_by_plan)[:2]
    unfinishable = {name: unfinishable_jobs(config, runs_by_plan[name], tables.cpu.parent)
                    for name in (fixed_name, staged_name) if not runs_by_plan[name].empty}
    return pd.DataFrame(rows), {"config": config, "design": design, "expected_seeds": per_type, "plans": details,
                                "patterns": patterns, "sd": sd, "unfinishable": unfinishable,
                                "resubmission": resubmission_line(config, tables.cpu.parent),
                                "runs": runs_by_plan, "train_device": "GPU" if on_gpu else "CPU"}


def render_verify(table: pd.DataFrame, info: dict, budget: str) -> str:
    design, device = info["design"], info["train_device"]
    seeds = ", ".join(f"{t} {n:.1f}" for t, n in info["expected_seeds"].items())
    lines = [f"Cost of the staged `verify` plan at budget '{budget}', claims {' '.join(info['patterns'])} "
             f"({sum(bool(p.runs) for p in info['plans']['rerun'].values())} with runs to train), next to the "
             "fixed plan",
             f"Design: first {design.first_seeds} seeds, +{design.step_seeds} per stage, at most {design.max_seeds}; "
             f"expected seeds per claim type from the staged design's simulation ({seeds}): ASSUMPTION every claim "
             f"true, normal seed scores, between-seed sd {info['sd']:g} tolerance(s); worst case: every claim to "
             f"{design.max_seeds} seeds.", "",
             f"{'plan':52s} {'run configs':>11s} {'seed-runs':>10s} {'train ' + device + '-h':>12s} "
             f"{'evaluate CPU-h':>14s} {'data CPU-h':>11s}"]
    for r in table.itertuples():
        lines.append(f"{r.plan:52s} {r.run_configs:11d} {r.seed_runs:10.1f} {r.train:12.1f} {r.evaluate:14.1f} "
                     f"{r.data:11.1f}")
    lines += ["", "Times per unit as in `cost --budget` (benchmark tables; data from manifests, else the generation "
              "benchmark, projected). Baselines `published` re-run every baseline whose summary is not vendored "
              "(qhyer/report/published_baselines.yaml)."]
    lines.append(info["resubmission"])
    for name, jobs in info["unfinishable"].items():
        lines += [f"{name}: {line}" if i == 0 else line for i, line in enumerate(unfinishable_lines(jobs))]
    return "\n".join(lines) + "\n"


def write_estimate(budget: str, out: Path | None = None, config_dir: Path = CONFIG_DIR,
                   cpu_table: Path = RESULTS / "cpu_step_times.csv", eval_table: Path = RESULTS / "eval_step_times.csv",
                   gpu_table: Path | None = None, manifest_dirs: list[Path] | None = None,
                   assumed_gpu_speedup: float = ASSUMED_GPU_SPEEDUP, target: str = "all",
                   claims: list[str] | None = None) -> tuple[str, list[Path]]:
    """The CLI's work: the rendered estimate, and the CSV written when `out` is given. `gpu_table` defaults to
    the newest benchmarks/results/gpu_*.csv, `manifest_dirs` to the budget's data folder. `target` `verify`: the
    staged plan of the `claims` selection (default: the config's) next to the fixed plan."""
    if not (math.isfinite(assumed_gpu_speedup) and assumed_gpu_speedup > 0):  # nan would fill every row with nan
        raise ConfigError(f"the assumed GPU speed-up must be a positive number (got {assumed_gpu_speedup})",
                          "e.g. --assumed-gpu-speedup 10")
    if target == "verify":
        tables = Tables(cpu_table, eval_table, gpu_table,
                        tuple(manifest_dirs) if manifest_dirs is not None else None,
                        assumed_gpu_speedup=assumed_gpu_speedup)
        table, info = estimate_verify(budget, claims, config_dir, tables)
        text = render_verify(table, info, budget)
    else:
        if claims:
            raise ConfigError("--claims selects the claims of `--target verify`", "add --target verify")
        config = workflow_config(config_dir, budget)
        table, plan = estimate(budget, config_dir, cpu_table, eval_table, gpu_table or latest_gpu_table(),
                               manifest_dirs if manifest_dirs is not None else [data_dir_of(config)],
                               assumed_gpu_speedup)
        text = render(table, budget) + resubmission_line(config, cpu_table.parent) + "\n" + "".join(
            line + "\n" for line in unfinishable_lines(unfinishable_jobs(config, plan["runs"], cpu_table.parent)))
    if not out:
        return text, []
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return text, [out]
