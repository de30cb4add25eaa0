"""Registry of methods: name → (module, config dataclass, agent class), imported lazily."""

from __future__ import annotations

import importlib

from qhyer.errors import ConfigError

METHODS: dict[str, tuple[str, str, str]] = {
    "qhyer": ("qhyer.algorithm", "QHyerConfig", "QHyerAgent"),
    "dt": ("baselines.dt", "DTConfig", "DTAgent"),
    "qt": ("baselines.qt", "QTConfig", "QTAgent"),
    "lsdt": ("baselines.lsdt", "LSDTConfig", "LSDTAgent"),
    "gciql": ("baselines.gciql", "GCIQLConfig", "GCIQLAgent"),
    "hiql": ("baselines.hiql", "HIQLConfig", "HIQLAgent"),
    "gcbc": ("baselines.gcbc", "GCBCConfig", "GCBCAgent"),
    "iql": ("baselines.iql", "IQLConfig", "IQLAgent"),
}

# Dataset families a method's runs are planned on (the workflow's cells); methods not listed run on every family.
# IQL is reward-based and not goal-conditioned: the card quotes it on AntMaze only, and OGBench files store no rewards.
METHOD_FAMILIES: dict[str, tuple[str, ...]] = {"iql": ("antmaze",)}


def runs_on(method: str, family: str) -> bool:
    """Whether the workflow plans `method` on datasets of `family` (the registry's 'ogbench', 'maze2d', 'antmaze')."""
    return family in METHOD_FAMILIES.get(method, (family,))


def method_classes(name: str) -> tuple[type, type]:
    """(config dataclass, agent class) of a method."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'", f"use one of: {', '.join(METHODS)}")
    module, config_cls, agent_cls = METHODS[name]
    mod = importlib.import_module(module)
    return getattr(mod, config_cls), getattr(mod, agent_cls)
