"""Checks of the workflow config (workflow/config/config.yaml merged with its budget) at DAG parse time.

The DAG calls `check_workflow_config` where it loads its config (workflow/rules/common.smk), so what a job would
reject — a dataset the registry does not know, τ = nan, a misspelled `method_overrides` key or a value of the
wrong type — stops `snakemake` before any job runs, with one line per problem instead of a schema dump.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from typing import Any

import jsonschema
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from qhyer.agent import dataset_family
from qhyer.data.registry import DATASETS
from qhyer.errors import ConfigError
from qhyer.methods import METHODS, method_classes, runs_on
from qhyer.runs import STUDIES, study_datasets, study_variants

# Where each study's datasets are listed in the config (the main study: Tables 1 and 2's lists).
DATASET_LISTS = ("table1_datasets", "table2_datasets", "ablation.datasets", "tau_sweep.datasets",
                 "source_protocol.datasets")
STEPS_KEY = "steps"  # the one method_overrides key that is not a `method.<field>` (qhyer.runs.train_steps)


def check_workflow_config(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """One line per problem of a merged workflow config; an empty list when the DAG can run it.

    The schema comes first (the other checks need its structure); then dataset names against the registry,
    `train.method_overrides` against each method's config dataclass, and every run's method config (budget
    overrides, then the study variant's fields) through the validation the trainer applies.
    """
    problems = [_schema_line(error) for error in
                sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(config),
                       key=lambda error: [str(part) for part in error.absolute_path])]
    if problems:
        return problems
    problems += _non_finite_numbers(config) + _unknown_datasets(config)
    overrides, override_problems = _method_overrides(config["train"]["method_overrides"])
    problems += override_problems
    if not problems:
        problems += _run_config_problems(config, overrides) + _batch_size_problems(config, overrides)
    return problems + _folder_problems(config)


def _folder_problems(config: dict[str, Any]) -> list[str]:
    """The output roots must be folders (or not exist yet): a file there fails every job after data generation."""
    return [f"{key}: {config[key]} is a file, not a folder (move it away or choose another {key})"
            for key in ("runs_root", "data_root") if os.path.exists(config[key]) and not os.path.isdir(config[key])]


def _dataset_rows(spec: Any, data: dict[str, Any]) -> list[int]:
    """Rows of the train (and validation) files the budget's data settings generate; none for user files."""
    if spec.family == "ogbench":
        episodes = data.get("ogbench_episodes") or spec.train_episodes
        length = data.get("ogbench_episode_length") or spec.episode_length
        return [episodes * length, *([episodes // 10 * length] if episodes // 10 else [])]
    if spec.family == "maze2d":
        return [data.get("maze2d_steps") or spec.total_steps]
    return []


def _batch_size_problems(config: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> list[str]:
    """Every run's batch against the rows of its generated data (a batch larger than the data never trains)."""
    problems = {}
    for study, spec_ in STUDIES.items():
        if spec_.section and spec_.section not in config:
            continue
        for method in spec_.methods or config["methods"]:
            batch = overrides.get(method, {}).get("batch_size", method_classes(method)[0]().batch_size)
            for name in study_datasets(study, config):
                rows = _dataset_rows(DATASETS[name], config["data"])
                if rows and batch > min(rows):
                    problems[f"{method} on {name}: method.batch_size={batch} exceeds the {min(rows)} rows of "
                             "the smallest file (train or validation) the budget's data settings generate (lower the "
                             "batch or raise data sizes)"] = None
    return list(problems)


def _where(path: Any) -> str:
    return ".".join(map(str, path)) or "config"


def _schema_line(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return (f"{_where(error.absolute_path)}: unknown key {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(error.schema.get('properties', {}))})")
    return f"{_where(error.absolute_path)}: {' '.join(error.message.split())}"


def _suggestion(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else "`python -m qhyer.data list` shows every dataset"


def _non_finite_numbers(value: Any, path: tuple = ()) -> list[str]:
    """JSON schema bounds let nan through (every comparison with nan is false)."""
    if isinstance(value, dict):
        return [line for key, item in value.items() for line in _non_finite_numbers(item, (*path, key))]
    if isinstance(value, list):
        return [line for index, item in enumerate(value) for line in _non_finite_numbers(item, (*path, index))]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{_where(path)}: must be a finite number (got {value})"]
    return []


def _unknown_datasets(config: dict[str, Any]) -> list[str]:
    problems = []
    for where in DATASET_LISTS:
        section, _, key = where.rpartition(".")
        names = config.get(section, {}).get(key, []) if section else config[key]
        problems += [f"{where}: unknown dataset '{name}' ({_suggestion(name, DATASETS)})"
                     for name in names if name not in DATASETS]
    return problems


def _method_overrides(overrides: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({method: {field: value}} of the valid `method.<field>` overrides, one line per invalid key or value)."""
    valid, problems = {}, []
    for method, keys in overrides.items():
        where = f"train.method_overrides.{method}"
        if method not in METHODS:
            problems.append(f"{where}: unknown method '{method}' (use one of: {', '.join(METHODS)})")
            continue
        config_cls = method_classes(method)[0]
        fields = {f.name for f in dataclasses.fields(config_cls)}
        valid[method] = {}
        for key, value in keys.items():
            if key == STEPS_KEY:
                if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
                    problems.append(f"{where}.{key}: must be an integer of at least 1 (got {value!r})")
                continue
            group, _, field = key.partition(".")
            if group != "method" or field not in fields:
                hint = (f"{config_cls.__name__} has no field '{field}'" if group == "method" else
                        f"keys are '{STEPS_KEY}' or 'method.<field>'")
                close = difflib.get_close_matches(field, fields, n=1) if group == "method" else []
                problems.append(f"{where}: unknown key '{key}' ({hint}"
                                + (f"; did you mean 'method.{close[0]}'?)" if close else ")"))
                continue
            problem = _typed_value_problem(config_cls, field, value)
            if problem:
                problems.append(f"{where}.{key}: {problem}")
            else:
                valid[method][field] = value
    return valid, problems


def _typed_value_problem(config_cls: type, field: str, value: Any) -> str | None:
    """Why `value` cannot set `field` of `config_cls` as the job's Hydra override would (None: it can)."""
    try:
        OmegaConf.merge(OmegaConf.structured(config_cls), {field: value})
    except OmegaConfBaseException as err:
        return str(err).splitlines()[0]  # OmegaConf appends key and type details on further lines
    return None


def _method_config_problems(method: str, layers: list[dict[str, Any]], families: set[str]) -> list[str]:
    """The method's config with `layers` of fields applied in order, validated for each dataset family as the
    trainer does (`for_family`); one message per distinct problem."""
    try:
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(method_classes(method)[0]), *layers))
    except OmegaConfBaseException as err:
        return [str(err).splitlines()[0]]
    problems: dict[str, None] = {}  # ordered, without repeats: families often fail alike
    for family in sorted(families):
        try:
            problems.update(dict.fromkeys(method_field_problems(config.for_family(family))))
        except ConfigError as err:
            problems[str(err)] = None
    return list(problems)


# Method fields that are sizes of a network (widths, depths, heads, state and window sizes): at least 1. A width of 0
# builds a network with no hidden units, which trains a constant policy without any error.
SIZE_FIELDS = ("embed_dim", "n_layers", "n_heads", "d_state", "d_conv", "expand", "critic_hidden", "crl_repr_dim",
               "cvae_latent_dim", "conv_dim", "rep_dim", "context_len", "kernel_size", "n_candidates", "batch_size")


def method_field_problems(config: Any) -> list[str]:
    """What no run of a method config can train with, one line each: a learning rate (`lr`, `*_lr`) that is not a
    positive finite number, any non-finite number, a size (SIZE_FIELDS, every width of `*_hidden_dims` and
    `q_head_hidden`) below 1, an `embed_dim` its `n_heads` do not divide. The trainer and the DAG's config check
    both apply it."""
    problems = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"method.{f.name} must be a finite number (got {value})")
        elif (f.name == "lr" or f.name.endswith("_lr")) and isinstance(value, int | float) and value <= 0:
            problems.append(f"method.{f.name} must be a positive learning rate (got {value})")
        elif f.name in SIZE_FIELDS and isinstance(value, int) and value < 1:
            problems.append(f"method.{f.name} must be at least 1 (got {value})")
        elif (f.name.endswith("hidden_dims") or f.name == "q_head_hidden") and value is not None and (
                not all(isinstance(width, int) and width >= 1 for width in value)):
            problems.append(f"method.{f.name} must list widths of at least 1 (got {list(value)})")
    heads, width = getattr(config, "n_heads", None), getattr(config, "embed_dim", None)
    if isinstance(heads, int) and isinstance(width, int) and heads >= 1 and width >= 1 and width % heads:
        problems.append(f"method.embed_dim={width} is not divisible by method.n_heads={heads}")
    return problems


def _run_config_problems(config: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> list[str]:
    """Every run's method config as the trainer builds it: the budget's overrides (reported under their key), then
    each study variant's fields (reported once per study, at the first variant that fails)."""
    def families(study: str, method: str) -> set[str]:
        """The families of the study's datasets that the workflow plans `method` on (qhyer.methods.runs_on)."""
        return {dataset_family(DATASETS[name]) for name in study_datasets(study, config)
                if runs_on(method, DATASETS[name].family)}

    studies = [study for study, spec in STUDIES.items() if not spec.section or spec.section in config]
    of_overrides = {method: _method_config_problems(method, [fields],
                                                    set().union(*(families(study, method) for study in studies)))
                    for method, fields in overrides.items()}
    lines = [f"train.method_overrides.{method}: {problem}"
             for method, found in of_overrides.items() for problem in found]
    by_study: dict[tuple[str, str], str] = {}
    for study in studies:
        spec = STUDIES[study]
        for variant, fields in study_variants(study, config).items():
            for method in [m for m in spec.methods or config["methods"] if not of_overrides.get(m)]:
                for problem in _method_config_problems(method, [overrides.get(method, {}), fields],
                                                       families(study, method)):
                    by_study.setdefault((study, problem), f"{spec.section or 'main'} variant {variant}, {method}: "
                                                          f"{problem}")
    return [*lines, *by_study.values()]
