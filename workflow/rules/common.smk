# Config loading and validation, and the run lists every other rule file uses.
import os

import yaml
from pathlib import Path


def _merge(base, extra):
    for key, value in extra.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) and key in base else value
    return base


_profile_file = Path(workflow.current_basedir).parent / "config" / "profiles" / f"{config['profile']}.yaml"
if not _profile_file.exists():
    raise WorkflowError(f"unknown profile '{config['profile']}': use smoke, quick or paper")
config = _merge(yaml.safe_load(_profile_file.read_text()), dict(config))
validate(config, schema="../schemas/config.schema.yaml")

PROFILE = config["profile"]
DATA = f"{config['data_root']}/{PROFILE}"
RUNS = f"{config['runs_root']}/{PROFILE}"
LOGS = f"logs/{PROFILE}"
BENCHMARKS = f"{LOGS}/benchmark"  # per-job wall time and peak memory (Snakemake `benchmark:` TSVs)
RUN = f"{RUNS}/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}"
OGBENCH_SUFFIXES = ("-play-v0", "-noisy-v0")

wildcard_constraints:
    study="main|ablation|tau",
    seed=r"\d+",
    dataset=r"[a-z0-9-]+-v\d",


def is_ogbench(dataset):
    return dataset.endswith(OGBENCH_SUFFIXES)


def user_file_present(dataset):
    """AntMaze cannot be regenerated: it is part of the DAG only when the user supplied its file."""
    from qhyer.data.d4rl import find_d4rl_file
    from qhyer.data.registry import get_spec
    from qhyer.errors import DataError

    try:
        find_d4rl_file(get_spec(dataset), DATA)
    except DataError:
        return False
    return True


def available(dataset):
    return not dataset.startswith("antmaze") or user_file_present(dataset)


def run_dirs(study, datasets, variants, methods):
    return [RUN.format(study=study, variant=v, method=m, dataset=d, seed=s)
            for d in datasets if available(d) for v in variants for m in methods for s in config["seeds"]]


MAIN_TABLE1 = run_dirs("main", config["table1_datasets"], ["default"], config["methods"])
MAIN_TABLE2 = run_dirs("main", config["table2_datasets"], ["default"], config["methods"])
ABLATION = run_dirs("ablation", config["ablation"]["datasets"],
                    [f"{b}-{c}" for b in config["ablation"]["backbones"] for c in config["ablation"]["conditionings"]],
                    ["qhyer"])
TAU = run_dirs("tau", config["tau_sweep"]["datasets"], [f"tau{t}" for t in config["tau_sweep"]["taus"]], ["qhyer"])
ABSENT_TABLE2 = [d for d in config["table2_datasets"] if not available(d)]


def variant_overrides(study, variant):
    """Hydra overrides a study's variant stands for."""
    if study == "ablation":
        backbone, conditioning = variant.split("-")
        return [f"method.backbone={backbone}", f"method.conditioning={conditioning}"]
    if study == "tau":
        return [f"method.expectile_tau={variant.removeprefix('tau')}"]
    return []


def eval_files(runs):
    return [f"{run}/eval_episodes.csv" for run in runs]


def run_outputs(runs):
    """Every file a run's jobs declare (training summary, evaluation episodes), for the target rules."""
    return [f"{run}/summary.json" for run in runs] + eval_files(runs)


def _size_flags(dataset):
    data = config["data"]
    if is_ogbench(dataset):
        flags = f"--episode-length {data['ogbench_episode_length']}"
        return flags + (f" --episodes {data['ogbench_episodes']}" if data["ogbench_episodes"] else "")
    return f"--steps {data['maze2d_steps']}" if data["maze2d_steps"] else ""


def dataset_files(wc):
    """Inputs of a training run: the generated files (AntMaze files are the user's, found by the reader)."""
    if is_ogbench(wc.dataset):
        return [f"{DATA}/{wc.dataset}.npz", f"{DATA}/{wc.dataset}-val.npz"]
    if wc.dataset.startswith("maze2d"):
        return [f"{DATA}/{wc.dataset}.hdf5"]
    return []


def hydra_value(value):
    """A config value as one shell word of a Hydra override (lists without spaces)."""
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def train_overrides(wc):
    overrides = variant_overrides(wc.study, wc.variant)
    per_method = config["train"]["method_overrides"].get(wc.method, {})
    overrides += [f"{key}={hydra_value(value)}" for key, value in per_method.items() if key != "steps"]
    return " ".join(overrides)


STUDY_SECTIONS = {"ablation": "ablation", "tau": "tau_sweep"}


def train_steps(wc):
    """Updates of one run: the study's `steps`, else the method's, else train.steps."""
    study_steps = config.get(STUDY_SECTIONS.get(wc.study, ""), {}).get("steps")
    method_steps = config["train"]["method_overrides"].get(wc.method, {}).get("steps", config["train"]["steps"])
    return study_steps or method_steps
