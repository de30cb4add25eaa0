"""Every dataset the harness knows: how it is made, where its files live, and its goal part.

OGBench settings follow `data_gen_scripts/commands.sh` of seohongpark/ogbench; D4RL settings follow
Farama-Foundation/D4RL
(`scripts/generation/generate_maze2d_datasets.py`, `d4rl/infos.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from qhyer.errors import ConfigError

# Observation layout of OGBench manipulation envs (ogbench/manipspace/envs/{cube,puzzle}_env.py,
# `compute_observation`): 19 proprioceptive entries, then 9 per cube (pos 3, quat 4, yaw cos/sin 2) or
# 4 per button (one-hot state 2, pos 1, vel 1). The goal part equals `compute_oracle_observation()`.
PROPRIO_DIM = 19


def cube_goal_dims(num_cubes: int) -> tuple[int, ...]:
    return tuple(PROPRIO_DIM + 9 * i + k for i in range(num_cubes) for k in range(3))


def puzzle_goal_dims(num_buttons: int) -> tuple[int, ...]:
    # Entry 1 of the one-hot state is 1.0 exactly when the button is on, as in the oracle representation.
    return tuple(PROPRIO_DIM + 4 * i + 1 for i in range(num_buttons))


@dataclass(frozen=True)
class DatasetSpec:
    name: str                 # canonical name, also the file stem (`cube-single-play-v0`)
    family: str               # 'ogbench' | 'maze2d' | 'antmaze'
    env_id: str               # environment id used for generation and evaluation
    kind: str                 # 'play' | 'noisy' | 'maze2d' | 'umaze' | 'diverse' ...
    obs_dim: int
    action_dim: int
    goal_dims: tuple[int, ...]  # indices of the task-relevant goal part of an observation
    regenerable: bool = True
    # OGBench generation (episodes of `episode_length` rows; validation = train_episodes // 10)
    train_episodes: int = 0
    episode_length: int = 1001
    p_random_action: float = 0.0
    # Evaluation
    eval_max_steps: int = 0
    # D4RL: total rows of the one continuous run, reference scores for normalisation
    total_steps: int = 0
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def val_episodes(self) -> int:
        return self.train_episodes // 10

    @property
    def train_file(self) -> str:
        return f"{self.name}.npz" if self.family == "ogbench" else f"{self.name}.hdf5"

    @property
    def val_file(self) -> str | None:
        return f"{self.name}-val.npz" if self.family == "ogbench" else None


def _ogbench_specs() -> list[DatasetSpec]:
    envs = {
        # env stem: (obs_dim, goal_dims, train episodes, eval steps, noisy p_random_action; None: no noisy dataset)
        "cube-single": (28, cube_goal_dims(1), 1000, 200, 0.1),
        "cube-double": (37, cube_goal_dims(2), 1000, 500, 0.1),
        "puzzle-3x3": (55, puzzle_goal_dims(9), 1000, 500, 0.2),
        "puzzle-4x4": (83, puzzle_goal_dims(16), 1000, 500, 0.2),
        "puzzle-4x5": (99, puzzle_goal_dims(20), 3000, 1000, 0.2),
        # play only: the card's cube-play total needs these two; commands.sh sizes 3000 / 5000 episodes
        "cube-triple": (46, cube_goal_dims(3), 3000, 1000, None),
        "cube-quadruple": (55, cube_goal_dims(4), 5000, 1000, None),
    }
    specs = []
    for stem, (obs_dim, goal_dims, episodes, eval_steps, p_random) in envs.items():
        for kind in ("play", "noisy") if p_random is not None else ("play",):
            specs.append(DatasetSpec(
                name=f"{stem}-{kind}-v0", family="ogbench", env_id=f"{stem}-v0", kind=kind,
                obs_dim=obs_dim, action_dim=5, goal_dims=goal_dims, train_episodes=episodes,
                p_random_action=p_random if kind == "noisy" else 0.0, eval_max_steps=eval_steps,
            ))
    return specs


def _d4rl_specs() -> list[DatasetSpec]:
    specs = []
    # maze2d-*-v1: reference scores from d4rl/infos.py; sizes from the D4RL paper.
    for maze, steps, horizon, ref_min, ref_max in (
        ("umaze", 1_000_000, 300, 23.85, 161.86),
        ("medium", 2_000_000, 600, 13.13, 277.39),
        ("large", 4_000_000, 800, 6.7, 273.99),
    ):
        specs.append(DatasetSpec(
            name=f"maze2d-{maze}-v1", family="maze2d", env_id=f"maze2d-{maze}-v1", kind="maze2d",
            obs_dim=4, action_dim=2, goal_dims=(0, 1), total_steps=steps, eval_max_steps=horizon,
            ref_min_score=ref_min, ref_max_score=ref_max, extra={"maze": maze},
        ))
    # antmaze-*-v2 need a pretrained ant policy nobody ships: read from user files only.
    for maze, kinds, horizon in (("umaze", ("", "diverse"), 700), ("medium", ("play", "diverse"), 1000),
                                 ("large", ("play", "diverse"), 1000)):
        for kind in kinds:
            name = f"antmaze-{maze}-{kind + '-' if kind else ''}v2"
            specs.append(DatasetSpec(
                name=name, family="antmaze", env_id=name, kind=kind or "umaze", obs_dim=29, action_dim=8,
                goal_dims=(0, 1), regenerable=False, total_steps=1_000_000, eval_max_steps=horizon,
                ref_min_score=0.0, ref_max_score=1.0, extra={"maze": maze},
            ))
    return specs


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _ogbench_specs() + _d4rl_specs()}


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by its canonical name or without the version suffix (`cube-single-play`)."""
    if name in DATASETS:
        return DATASETS[name]
    for spec in DATASETS.values():
        if spec.name.rsplit("-v", 1)[0] == name:
            return spec
    known = ", ".join(sorted(DATASETS))
    raise ConfigError(f"unknown dataset '{name}'", f"use one of: {known}")


def default_data_dir() -> Path:
    """Where generated datasets go: $QHYER_DATA_DIR, else ./data under the working directory."""
    return Path(os.environ.get("QHYER_DATA_DIR", "data"))


def ogbench_user_dir() -> Path:
    """OGBench's own download folder (`ogbench.utils.DEFAULT_DATASET_DIR`)."""
    return Path("~/.ogbench/data").expanduser()


def d4rl_user_dir() -> Path:
    """D4RL's own download folder (`d4rl/offline_env.py`: $D4RL_DATASET_DIR or ~/.d4rl/datasets)."""
    return Path(os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()
