# Config loading and validation, and the run lists every other rule file uses. What a run is (its folder, the
# method fields a study's variant sets) comes from qhyer/runs.py; dataset facts (files, family) from the registry.
import sys
import os
import shlex

import yaml
from pathlib import Path

from qhyer.data.registry import DATASETS, get_spec
from qhyer.methods import METHODS, runs_on
from qhyer.report.cost import job_time_limits
from qhyer.runs import STUDIES, eval_schedule, merge_config, run_dir, study_variants, train_steps
from qhyer.workflow_config import check_workflow_config

BUDGETS_DIR = Path(workflow.current_basedir).parent / "config" / "budgets"
SCHEMA = Path(workflow.current_basedir).parent / "schemas" / "config.schema.yaml"


def _budget_name(cfg):
    """`--config budget=NAME`; `profile=NAME` is the old spelling, accepted for one release."""
    if "profile" in cfg:
        print("note: `--config profile=` is now `--config budget=`", file=sys.stderr)
        cfg["budget"] = cfg.pop("profile")
    return cfg["budget"]


_budget_file = BUDGETS_DIR / f"{_budget_name(config)}.yaml"
if not _budget_file.exists():
    raise WorkflowError(f"unknown budget '{config['budget']}': use one of "
                        + ", ".join(sorted(p.stem for p in BUDGETS_DIR.glob("*.yaml"))))
config = merge_config(yaml.safe_load(_budget_file.read_text()), dict(config))
# The schema, then what the jobs would reject (registry names, method fields and types, nan): one line each.
_problems = check_workflow_config(config, yaml.safe_load(SCHEMA.read_text()))
if _problems:
    raise WorkflowError("invalid workflow config:\n" + "\n".join(_problems))

BUDGET = config["budget"]
DATA = f"{config['data_root']}/{BUDGET}"
RUNS = f"{config['runs_root']}/{BUDGET}"
LOGS = f"logs/{BUDGET}"
BENCHMARKS = f"{LOGS}/benchmark"  # per-job wall time and peak memory (Snakemake `benchmark:` TSVs)
RUN = run_dir(config["runs_root"], BUDGET, "{study}", "{variant}", "{method}", "{dataset}", "{seed}")


wildcard_constraints:
    study="|".join(STUDIES),
    seed=r"\d+",
    dataset="|".join(DATASETS),


_time_limits = {}


def time_limit(stage):
    """A run's train or evaluate `runtime` resource (minutes; SLURM's time limit) from the cost estimate
    (qhyer/report/cost.py: benchmark tables x the run's work, with its safety factor and bounds)."""

    def minutes(wildcards):
        if not _time_limits:
            _time_limits.update(job_time_limits(config))
        key = (wildcards.study, wildcards.variant, wildcards.method, wildcards.dataset)  # every seed alike
        return _time_limits[key][stage]

    return minutes


def datasets_of_family(family):
    """A wildcard pattern matching the registry's datasets of one family (which generator makes them)."""
    return "|".join(name for name, spec in DATASETS.items() if spec.family == family)


def user_file_present(dataset):
    """AntMaze cannot be regenerated: it is part of the DAG only when the user supplied its file."""
    from qhyer.data.d4rl import find_d4rl_file
    from qhyer.errors import DataError

    try:
        find_d4rl_file(get_spec(dataset), DATA)
    except DataError:
        return False
    return True


def available(dataset):
    return get_spec(dataset).regenerable or user_file_present(dataset)


def run_dirs(study, datasets):
    methods = STUDIES[study].methods or config["methods"]
    return [run_dir(config["runs_root"], BUDGET, study, v, m, d, s)
            for d in datasets if available(d) for v in study_variants(study, config) for m in methods
            if runs_on(m, get_spec(d).family)
            for s in config["seeds"]]


MAIN_TABLE1 = run_dirs("main", config["table1_datasets"])
MAIN_TABLE2 = run_dirs("main", config["table2_datasets"])
ABLATION = run_dirs("ablation", config["ablation"]["datasets"])
TAU = run_dirs("tau", config["tau_sweep"]["datasets"])
SOURCE = run_dirs("source", config["source_protocol"]["datasets"]) if "source_protocol" in config else []
ABSENT_TABLE2 = [d for d in config["table2_datasets"] if not available(d)]


def eval_files(runs):
    return [f"{run}/eval_episodes.csv" for run in runs]


def run_outputs(runs):
    """Every file a run's jobs declare (training summary, evaluation episodes), for the target rules."""
    return [f"{run}/summary.json" for run in runs] + eval_files(runs)


def _size_flags(dataset):
    data, spec = config["data"], get_spec(dataset)
    if spec.family == "ogbench":
        flags = f"--episode-length {data['ogbench_episode_length']}"
        return flags + (f" --episodes {data['ogbench_episodes']}" if data["ogbench_episodes"] else "")
    return f"--steps {data['maze2d_steps']}" if data["maze2d_steps"] else ""


def dataset_files(wc):
    """Inputs of a training run: the generated files (a user's AntMaze file is found by the reader)."""
    spec = get_spec(wc.dataset)
    return [f"{DATA}/{name}" for name in (spec.train_file, spec.val_file) if name] if spec.regenerable else []


def hydra_value(value):
    """A config value as one Hydra override value (lists without spaces; floats exactly)."""
    if isinstance(value, list):
        return "[" + ",".join(map(hydra_value, value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _method_overrides(method):
    return {k: v for k, v in config["train"]["method_overrides"].get(method, {}).items() if k != "steps"}


# Budget keys passed to every run's trainer as train.<key> when the budget sets them.
TRAIN_LOOP_KEYS = ("checkpoint_every", "precision", "compile", "compile_mode")


def train_overrides(wc):
    """The budget's overrides of the method, then the study variant's fields (which therefore win), then the
    evaluation schedule; every word shell-quoted."""
    overrides = {**_method_overrides(wc.method),
                 **{f"method.{k}": v for k, v in study_variants(wc.study, config)[wc.variant].items()}}
    words = [f"{k}={hydra_value(v)}" for k, v in overrides.items()]
    words += [f"eval.{k}={v}" for k, v in eval_schedule(wc.dataset, config, wc.study, wc.method).items()]
    words += [f"train.{key}={hydra_value(config['train'][key])}" for key in TRAIN_LOOP_KEYS if key in config["train"]]
    return " ".join(map(shlex.quote, words))


def run_train_steps(wc):
    return train_steps(wc.study, wc.method, wc.dataset, config)
