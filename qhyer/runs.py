"""What a run is: its identity, its folder's path, the method fields a study's variant sets, and its records.

A run is one training of a method on a dataset with a seed, in a study's variant, under a named budget. This module
is the one owner of that identity:
  * the workflow (workflow/rules/common.smk) builds run folders with `RUN_DIR` and asks `study_variants` which
    method fields each variant sets;
  * a trained run records the identity, every resolved method field and the run's protocol in `summary.json`
    (`run_record`; qhyer/run_folder.py writes it);
  * the report reads runs back with `load_records` / `load_episodes`, from those records alone — never from the
    folder's path — and every table and claim reads a run's evaluation through `run_evaluation`, which refuses one
    that is incomplete or not of the run's current checkpoints.
The folder's own files and rules (config.yaml, checkpoints, lock, resume, evaluation) are qhyer/run_folder.py's;
this module imports neither it nor torch, since the DAG imports it to plan every job (tests/test_import_layers.py).
Adding a study = one entry in `STUDIES` (plus its section in the workflow config and its table).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, DataError
from qhyer.io import NUMBER_PACKAGES, NUMBER_SETTINGS, git_commit, package_versions, read_csv_checked

# The run folder below the runs root; identity fields only, so two runs never share a folder.
RUN_DIR = "{runs_root}/{budget}/{study}/{variant}/{method}/{dataset}/seed{seed}"
MAIN_VARIANT = "default"


@dataclass(frozen=True)
class Study:
    """A family of runs: which workflow config section lists its datasets, and what each variant sets.

    `variants(section)` maps the section to {variant name: {method field: value}}; the trainer receives the fields
    as `method.<field>=<value>` overrides placed after the budget's own, so a variant's value always wins.
    """

    section: str | None                     # workflow config section (None: Tables 1 and 2's own lists)
    variants: Callable[[dict], dict[str, dict[str, Any]]]
    methods: tuple[str, ...] | None = None  # None: every method of the workflow config


def _ablation(section: dict) -> dict[str, dict[str, Any]]:
    """Backbone x conditioning, each on its conditioning's own goal mix, plus the goal-mix control `rtg_goals`: the
    conditionings it names trained once more on the 'rtg' variant's goal mix, as '<backbone>-<conditioning>-rtg-goals'
    (the RTG row's claim compares tokens trained on the same data)."""
    variants = {f"{b}-{c}": {"backbone": b, "conditioning": c}
                for b in section["backbones"] for c in section["conditionings"]}
    control = section.get("rtg_goals")
    if control:
        variants.update({f"{b}-{c}-rtg-goals": {"backbone": b, "conditioning": c, **control["goal_mix"]}
                         for b in control["backbones"] for c in control["conditionings"]})
    return variants


def _tau(section: dict) -> dict[str, dict[str, Any]]:
    return {f"tau{t}": {"expectile_tau": float(t)} for t in section["taus"]}


STUDIES: dict[str, Study] = {
    "main": Study(None, lambda section: {MAIN_VARIANT: {}}),
    "ablation": Study("ablation", _ablation, ("qhyer",)),
    "tau": Study("tau_sweep", _tau, ("qhyer",)),
    # The D4RL numbers the card quotes for QT and LSDT come from their authors' own protocols (D4RL rewards, RTG
    # targets, best evaluation over training): these runs reproduce them (baselines/sequence.py `protocol`).
    "source": Study("source_protocol", lambda section: {"source": {"protocol": "source"}}, ("dt", "qt", "lsdt")),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study '{name}'", f"use one of: {', '.join(STUDIES)}")
    return STUDIES[name]


def study_variants(study: str, workflow_config: dict) -> dict[str, dict[str, Any]]:
    """{variant: method fields} of `study` under a workflow config (merged with its budget)."""
    spec = get_study(study)
    return spec.variants(workflow_config.get(spec.section, {}) if spec.section else {})


def run_dir(runs_root: str, budget: str, study: str, variant: str, method: str, dataset: str, seed: int) -> str:
    return RUN_DIR.format(runs_root=runs_root, budget=budget, study=study, variant=variant, method=method,
                          dataset=dataset, seed=seed)


# --- a budget's runs -------------------------------------------------------------------------------------------

def merge_config(base: dict, extra: dict) -> dict:
    """`extra` merged into `base` (nested dicts key by key; other values replaced), as Snakemake merges configs."""
    for key, value in extra.items():
        base[key] = merge_config(base.get(key, {}), value) if isinstance(value, dict) and key in base else value
    return base


def workflow_config(config_dir: str | Path, budget: str | None = None) -> dict:
    """The workflow config (`config.yaml`) merged over its budget file `budgets/<budget>.yaml`, as the DAG loads it
    (workflow/rules/common.smk); `budget` overrides config.yaml's own choice."""
    config_dir = Path(config_dir)
    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["budget"] = budget or config["budget"]
    budget_file = config_dir / "budgets" / f"{config['budget']}.yaml"
    if not budget_file.is_file():
        raise ConfigError(f"unknown budget '{config['budget']}'",
                          f"use one of: {', '.join(sorted(p.stem for p in budget_file.parent.glob('*.yaml')))}")
    return merge_config(yaml.safe_load(budget_file.read_text()), config)


def study_datasets(study: str, workflow_config: dict) -> list[str]:
    """The datasets a study runs on under a (merged) workflow config."""
    section = get_study(study).section
    return workflow_config[section]["datasets"] if section else \
        workflow_config["table1_datasets"] + workflow_config["table2_datasets"]


def eval_schedule(dataset: str, workflow_config: dict, study: str = "main",
                  method: str | None = None) -> dict[str, Any]:
    """The evaluation schedule (episodes_per_task, every, aggregate, last_k) of a run: the method's entry in its
    study section's `method_eval`, else the section's own `eval`, else the dataset family's, else the budget's
    `default`."""
    section = get_study(study).section
    own = workflow_config.get(section, {}) if section else {}
    if method in own.get("method_eval", {}):
        return own["method_eval"][method]
    if "eval" in own:
        return own["eval"]
    schedules = workflow_config["eval"]["schedule"]
    return schedules.get(get_spec(dataset).family, schedules["default"])


def train_steps(study: str, method: str, dataset: str, workflow_config: dict) -> int:
    """Updates of one run: the study's `method_steps` of the method and dataset, else the study's `steps`, else the
    method's, else the dataset family's, else train.steps."""
    section, train, spec = get_study(study).section, workflow_config["train"], get_spec(dataset)
    family_steps = train.get("steps_by_family", {}).get(spec.family, train["steps"])
    own = workflow_config[section] if section else {}
    study_steps = own.get("method_steps", {}).get(method, {}).get(spec.name) or own.get("steps")
    return study_steps or train["method_overrides"].get(method, {}).get("steps", family_steps)


# --- records ------------------------------------------------------------------------------------------------

# Protocol fields every run records (summary.json `protocol`); claims compare them with what they need.
PROTOCOL_FIELDS = ("steps", "batch_size", "episodes_per_task", "eval_every", "eval_aggregate", "eval_last_k",
                   "dataset_episodes", "dataset_rows")
IDENTITY_FIELDS = ("study", "variant", "method", "dataset", "seed", "budget")


def eval_steps(steps: int, every: int, aggregate: str, last_k: int) -> list[int]:
    """Training steps whose checkpoints an evaluation schedule evaluates (always ending with the final step)."""
    if aggregate == "final" or not every:
        return [steps]
    points = sorted({*range(every, steps + 1, every), steps})
    return points[-last_k:] if aggregate == "mean_last" else points


def protocol_label(protocol: dict) -> str:
    """One line a reader can check: what the run trained and how it was evaluated (`episode_cap`, when an
    evaluation recorded one: episodes cut below the official step limit)."""
    cap = f" (capped at {protocol['episode_cap']} steps)" if protocol.get("episode_cap") else ""
    schedule = {"final": "final checkpoint", "best": f"best of evaluations every {protocol['eval_every']}",
                "mean_last": f"mean of the last {protocol['eval_last_k']} evaluations every "
                             f"{protocol['eval_every']}"}[protocol["eval_aggregate"]]
    return (f"{protocol['steps']} updates, batch {protocol['batch_size']}, {protocol['episodes_per_task']} "
            f"episodes/task{cap}, {schedule}, dataset {protocol['dataset_episodes']} episodes "
            f"({protocol['dataset_rows']} rows)")


def run_record(*, study: str, variant: str, method: str, dataset: str, seed: int, budget: str, steps_trained: int,
               protocol: dict[str, Any], method_config: dict[str, Any]) -> dict[str, Any]:
    """The fields of `summary.json` the report reads back (`read_summary`); the trainer adds its own beside them."""
    if set(protocol) != set(PROTOCOL_FIELDS):
        raise ConfigError(f"a run's protocol records exactly {', '.join(PROTOCOL_FIELDS)} (got {', '.join(protocol)})")
    return {"study": study, "variant": variant, "method": method, "dataset": dataset, "seed": seed, "budget": budget,
            "steps_trained": steps_trained, "protocol": protocol, "method_config": method_config}


def read_summary(run: str | Path) -> dict:
    """A run folder's `summary.json` (written when training finished), or a one-line DataError."""
    path = Path(run) / "summary.json"
    if not path.is_file():
        raise DataError(f"{Path(run)} has no summary.json: the run did not finish training",
                        "train it (or rerun the DAG) before reporting it")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err})", "delete the run folder and retrain it") from None
    if not isinstance(summary, dict):
        raise DataError(f"{path} holds a JSON {type(summary).__name__}, not a run's record",
                        "delete the run folder and retrain it")
    missing = [k for k in (*IDENTITY_FIELDS, "protocol", "method_config") if k not in summary]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (written by an older version of the harness)",
                        "retrain the run")
    if isinstance(summary.get("steps_trained"), bool) or not isinstance(summary.get("steps_trained"), int):
        raise DataError(f"{path}: steps_trained is {summary.get('steps_trained')!r}, not a number of updates",
                        "delete the run folder and retrain it")
    protocol = summary["protocol"]
    bad = [k for k in PROTOCOL_FIELDS if not isinstance(protocol, dict) or protocol.get(k) is None]
    if bad or not isinstance(summary["method_config"], dict):
        raise DataError(f"{path}: protocol {'fields ' + ', '.join(bad) if bad else ''} "
                        f"{'or method_config ' if not bad else ''}not recorded (null or not an object)",
                        "delete the run folder and retrain it")
    return summary


def record_row(summary: dict, run: Path) -> dict[str, Any]:
    """A flat row: identity, protocol (`protocol.<field>`), resolved method fields (`method.<field>`)."""
    row: dict[str, Any] = {key: summary[key] for key in IDENTITY_FIELDS}
    row.update(run_dir=str(run), steps_trained=summary.get("steps_trained"), config_hash=summary.get("config_hash"),
               protocol=protocol_label(summary["protocol"]))
    row.update({f"protocol.{k}": summary["protocol"].get(k) for k in PROTOCOL_FIELDS})
    for key, value in summary["method_config"].items():
        row[f"method.{key}"] = json.dumps(value) if isinstance(value, list | dict) else value
    row.update(provenance_fields(summary.get("provenance") or {}))
    return row


# --- provenance -----------------------------------------------------------------------------------------------

UNKNOWN = "unknown"
PROVENANCE_COLUMNS = ("commit", "dataset_sha256", "versions")


def versions_label(versions: dict[str, str]) -> str:
    """`torch=2.5.1 numpy=2.1.3 ... mamba_cpu=fused-c(-O3,-march=native)`: the versions of the packages and the
    settings that change numbers (io.NUMBER_PACKAGES, io.NUMBER_SETTINGS)."""
    return " ".join(f"{name}={versions.get(name, UNKNOWN)}" for name in (*NUMBER_PACKAGES, *NUMBER_SETTINGS))


def provenance_fields(provenance: dict) -> dict[str, str]:
    """A run's recorded provenance (io.provenance) as record columns: `commit` (`<sha>`, or `<sha>-dirty` when
    tracked files had uncommitted changes), `dataset_sha256` of its training file, `versions` (`versions_label`);
    `unknown` where the run recorded none."""
    return {"commit": provenance.get("commit") or UNKNOWN,
            "dataset_sha256": (provenance.get("inputs_sha256") or {}).get("dataset") or UNKNOWN,
            "versions": versions_label(provenance.get("versions") or {})}


def checkout_provenance() -> dict[str, str]:
    """The current checkout's commit (with its dirty flag) and installed versions, as `provenance_fields` names
    them (no dataset: a checkout has none of its own)."""
    return {"commit": git_commit(), "versions": versions_label(package_versions(NUMBER_PACKAGES))}


def _split_versions(label: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in label.split())


def _per_package(records: pd.DataFrame) -> pd.DataFrame:
    """One column per package of NUMBER_PACKAGES: the version each run recorded."""
    return pd.DataFrame([_split_versions(label) for label in records["versions"]], index=records.index)


def run_label(record: dict | pd.Series) -> str:
    """`<study>/<variant>/<method>/<dataset>/seed<N>`: a run, as a warning names it."""
    return f"{record['study']}/{record['variant']}/{record['method']}/{record['dataset']}/seed{record['seed']}"


def _spread(what: str, values: pd.Series, records: pd.DataFrame, shown: int = 3) -> str:
    """`what: A (5 runs) vs B (2 runs: run, run)`: every value with its count, most common first; the runs of every
    other value are named (the first `shown`)."""
    counts = Counter(values)
    parts = []
    for rank, (value, count) in enumerate(counts.most_common()):
        part = f"{value} ({count} run{'s' if count > 1 else ''}"
        if rank:
            names = [run_label(r) for _, r in records[values == value].head(shown).iterrows()]
            part += ": " + ", ".join(names) + (f", +{count - shown} more" if count > shown else "")
        parts.append(part + ")")
    return f"{what}: " + " vs ".join(parts)


def provenance_differences(records: pd.DataFrame) -> list[str]:
    """What the runs' provenance is mixed in — commits, one dataset's sha256, one package's version — one phrase
    each naming the runs that differ; empty when every run shares one provenance. `records`: one row per run."""
    if records.empty:
        return []
    out = [_spread("commit", records["commit"], records)] if records["commit"].nunique() > 1 else []
    for dataset, group in records.groupby("dataset", sort=False):
        if group["dataset_sha256"].nunique() > 1:
            out.append(_spread(f"{dataset} sha256", group["dataset_sha256"].str[:12], group))
    packages = _per_package(records)
    out += [_spread(name, packages[name], records) for name in packages if packages[name].nunique() > 1]
    return out


def checkout_differences(records: pd.DataFrame, checkout: dict[str, str]) -> list[str]:
    """How the runs differ from `checkout` (`checkout_provenance`): their commits, and every package version
    that is not the installed one; empty when they match it."""
    if records.empty:
        return []
    out = []
    commits = sorted(set(records["commit"]) - {checkout["commit"]})
    if commits:
        out.append(f"commit {', '.join(commits)} (checkout: {checkout['commit']})")
    installed, packages = _split_versions(checkout["versions"]), _per_package(records)
    for name in packages:
        other = sorted(set(packages[name]) - {installed.get(name)})
        if other:
            out.append(f"{name} {', '.join(other)} (installed: {installed.get(name, UNKNOWN)})")
    return out


def provenance_warning(records: pd.DataFrame, checkout: dict[str, str]) -> str | None:
    """One line when the runs are of mixed provenance or differ from the current checkout; None when neither."""
    mixed, drift = provenance_differences(records), checkout_differences(records, checkout)
    parts = ([f"runs of mixed provenance — {'; '.join(mixed)}"] if mixed else []) + \
        ([f"runs differ from the current checkout — {'; '.join(drift)}"] if drift else [])
    return "WARNING: " + "; and ".join(parts) if parts else None


def run_folders(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders of the given folders or files inside them, each once, in the given order."""
    dirs = (p if p.is_dir() else p.parent for p in map(Path, paths))
    return list(dict.fromkeys(dirs))


def read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The record (`record_row`) of every run folder (or file inside one) given, each as recorded; two folders of
    one run (the same IDENTITY_FIELDS: a copied folder) are refused, naming both, since every seed would count twice."""
    rows = [record_row(read_summary(run), run) for run in run_folders(paths)]
    if not rows:
        raise DataError("no run folders given", "pass run folders or their eval_episodes.csv files")
    seen: dict[tuple, str] = {}
    for row in rows:
        first = seen.setdefault(tuple(row[k] for k in IDENTITY_FIELDS), row["run_dir"])
        if first != row["run_dir"]:
            raise DataError(f"{first} and {row['run_dir']} hold the same run ({run_label(row)}): its seed would "
                            "count twice", "pass one of the two folders (delete or move the copy)")
    return rows


def load_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run folder (or file inside one) given; see `record_row`."""
    return pd.DataFrame(read_records(paths))


# --- a run's evaluation ------------------------------------------------------------------------------------------

# What binds an evaluation row to the checkpoint it measured (qhyer.run_folder.evaluate_agent writes them): its step and
# config hash, and the episodes per task and episode step limit it was evaluated with.
METRICS_FILE, METRICS_COLUMNS = "metrics.csv", ("step", "split", "metric", "value")  # run_folder.MetricsLog writes it
EVALUATION_COLUMNS = ("step", "config_hash", "episodes_per_task", "max_steps")
EPISODE_COLUMNS = ("task", "episode", "success", "return", *EVALUATION_COLUMNS)


def _evaluate_again(path: Path) -> str:
    return f"re-run its evaluate step (python -m qhyer.evaluate {path.parent})"


def _refuse(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}", _evaluate_again(path))


def _read_episodes(path: Path) -> pd.DataFrame:
    absent = DataError(f"{path.parent} has no eval_episodes.csv: the run was not evaluated",
                       f"evaluate it (python -m qhyer.evaluate {path.parent}) or leave the folder out")
    if path.is_file():
        with open(path, "rb") as fh:
            if fh.seek(0, 2) == 0 or (fh.seek(-1, 2) >= 0 and fh.read(1) != b"\n"):
                raise _refuse(path, "not a readable CSV: empty, or it ends mid-row (cut off while written or copied)")
    frame = read_csv_checked(path, (), absent, _evaluate_again(path),
                             dtype={"config_hash": str})  # a hex hash of digits only is still a string
    missing = [c for c in EPISODE_COLUMNS if c not in frame]
    if missing:
        raise _refuse(path, f"lacks column(s) {', '.join(missing)} (written before evaluations were bound to their "
                            "checkpoint)")
    if frame.empty:
        raise _refuse(path, "holds no episodes")
    return frame


def read_metrics(run: str | Path) -> pd.DataFrame:
    """A run's training and validation metrics (METRICS_FILE: rows of METRICS_COLUMNS); one line naming the file
    when it is absent, unreadable or lacks a column."""
    path = Path(run) / METRICS_FILE
    return read_csv_checked(path, METRICS_COLUMNS,
                            DataError(f"{path.parent} has no {METRICS_FILE}: the run never trained",
                                      f"train it (python -m qhyer.train ... run_dir={path.parent}) or leave the "
                                      "folder out"),
                            "retrain the run (its metrics are rewritten from the checkpoint)")


def run_evaluation(record: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The strict reader of a run's evaluation: `record` (`read_records`) with the protocol it was evaluated under,
    and its `eval_episodes.csv`, refused with one line naming the file unless it is the complete evaluation of the
    run's current checkpoints — complete rows, rows of the checkpoint summary.json records (config_hash), every
    scheduled step × every task × the recorded episodes, each (step, task, episode) once, finite values.

    The record's `protocol.episodes_per_task` becomes the episodes evaluated and `protocol.episode_cap` the episode
    step limit when it was below the official one, and its `protocol` label says both.
    """
    from qhyer.rollout.eval_env import eval_tasks  # gymnasium and ogbench: only when episodes are read

    path = Path(record["run_dir"]) / "eval_episodes.csv"
    frame = _read_episodes(path)
    spec = get_spec(record["dataset"])
    values = ["success", "return", *(["normalized_score"] if spec.family != "ogbench" else [])]
    incomplete = frame[[c for c in frame if c not in values]].isna().any(axis=1)
    if incomplete.any():
        raise _refuse(path, f"{int(incomplete.sum())} incomplete row(s) (first: line {int(incomplete.idxmax()) + 2})")
    numbers = frame[[c for c in values if c in frame]].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(numbers).all(axis=1)
    if bad.any():
        raise _refuse(path, f"{int(bad.sum())} row(s) with missing or non-finite {', '.join(values)} "
                            f"(first: line {int(bad.idxmax()) + 2})")
    if record.get("steps_trained") != record["protocol.steps"]:
        raise DataError(f"{record['run_dir']}/summary.json records {record.get('steps_trained')} steps trained, "
                        f"not its protocol's {record['protocol.steps']}", "rerun its training, then its evaluation")
    hashes = set(frame["config_hash"].astype(str))
    if hashes != {str(record.get("config_hash"))}:
        raise _refuse(path, f"rows of checkpoint config_hash {', '.join(sorted(hashes))}, not of the run's current "
                            f"checkpoints ({record.get('config_hash')}, summary.json)")
    for column in ("episodes_per_task", "max_steps"):
        if frame[column].nunique() != 1:
            raise _refuse(path, f"rows of several evaluations ({column} {', '.join(map(str, frame[column].unique()))})")
    duplicated = frame.duplicated(["step", "task", "episode"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise _refuse(path, f"{int(duplicated.sum())} duplicated episode(s) (first: step {first['step']}, task "
                            f"{first['task']}, episode {first['episode']})")
    episodes, cap = int(frame["episodes_per_task"].iloc[0]), int(frame["max_steps"].iloc[0])
    scheduled = eval_steps(int(record["protocol.steps"]), int(record["protocol.eval_every"]),
                           record["protocol.eval_aggregate"], int(record["protocol.eval_last_k"]))
    found = sorted(set(frame["step"].astype(int)))
    if found != scheduled:
        raise _refuse(path, f"evaluated checkpoints of steps {found}, not the schedule's {scheduled}")
    counts = frame.groupby(["step", "task"]).size()
    expected = pd.MultiIndex.from_product([scheduled, list(eval_tasks(spec))], names=["step", "task"])
    short = [f"step {step} task {task}: {counts.get((step, task), 0)}" for step, task in expected
             if counts.get((step, task), 0) != episodes]
    if short or len(counts) != len(expected):
        raise _refuse(path, f"not {episodes} episodes (the recorded episodes_per_task) for every scheduled step × task "
                            f"({', '.join(short[:3]) or 'and no tasks outside its protocol'})")
    protocol = {k: record[f"protocol.{k}"] for k in PROTOCOL_FIELDS}
    protocol.update(episodes_per_task=episodes, episode_cap=cap if cap < spec.eval_max_steps else None)
    evaluated = {**record, "protocol.episodes_per_task": episodes, "protocol.episode_cap": protocol["episode_cap"],
                 "protocol": protocol_label(protocol)}
    return evaluated, frame
