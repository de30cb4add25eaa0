"""D4RL hdf5 files (maze2d-*-v1, antmaze-*-v2) → `EpisodeDataset`.

Layout (Farama-Foundation/D4RL `d4rl/offline_env.py`, `get_dataset`): flat arrays
`observations`, `actions`, `rewards`, `terminals`, `timeouts`, `infos/goal`, `infos/qpos`, `infos/qvel`.
Episode boundaries, as in D4RL's `sequence_dataset` where the meaning is the same:
- Maze2d: one continuous run; `timeouts` marks where a navigation target was solved or timed out (released
  v1 files) and `terminals` is all False. Files from D4RL's public script carry those flags in `terminals` and
  have no `timeouts` (issue #176), so a row ends an episode when either flag is set.
- AntMaze: `timeouts` marks the 1001-step resets of the collection run. `terminals` is only the relabelled
  goal indicator (`relabel_antmaze_rewards.py`: within 0.5 of the evaluation goal) while the ant walks on, so
  it does not end an episode, as in goal-conditioned practice (HIQL's D4RL loader splits AntMaze only where
  the trajectory is discontinuous). It is kept in `meta['terminals']` for methods that bootstrap on it, and
  `source_episodes` splits there for the baselines' source protocols (QT and LSDT end a trajectory at it).
Rewards are kept as stored; `infos/goal` (the data-collection target of each row) goes to `meta['goal']`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec, d4rl_user_dir, default_data_dir
from qhyer.errors import DataError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "infos/goal")
_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl"
# File names D4RL downloads to its own folder: the basename of each env's `dataset_url`
# (`d4rl/pointmaze/__init__.py`, `d4rl/locomotion/__init__.py`).
D4RL_URLS = {
    "maze2d-umaze-v1": f"{_URL}/maze2d/maze2d-umaze-sparse-v1.hdf5",
    "maze2d-medium-v1": f"{_URL}/maze2d/maze2d-medium-sparse-v1.hdf5",
    "maze2d-large-v1": f"{_URL}/maze2d/maze2d-large-sparse-v1.hdf5",
    "antmaze-umaze-v2": f"{_URL}/ant_maze_v2/Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5",
    "antmaze-umaze-diverse-v2":
        f"{_URL}/ant_maze_v2/Ant_maze_u-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
    "antmaze-medium-play-v2":
        f"{_URL}/ant_maze_v2/Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    "antmaze-medium-diverse-v2":
        f"{_URL}/ant_maze_v2/Ant_maze_big-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
    "antmaze-large-play-v2":
        f"{_URL}/ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    "antmaze-large-diverse-v2":
        f"{_URL}/ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
}


def d4rl_file_name(spec: DatasetSpec) -> str:
    return D4RL_URLS[spec.name].rsplit("/", 1)[1]


def find_d4rl_file(spec: DatasetSpec, data_dir: str | Path | None = None) -> Path:
    """`<name>.hdf5` or D4RL's own file name, in `data_dir` (default ./data or $QHYER_DATA_DIR), then in D4RL's
    download folder ($D4RL_DATASET_DIR or ~/.d4rl/datasets)."""
    folder = Path(data_dir) if data_dir else default_data_dir()
    candidates = [f / name for f in (folder, d4rl_user_dir()) for name in (spec.train_file, d4rl_file_name(spec))]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(map(str, candidates))
    if spec.regenerable:
        raise DataError(f"no file for {spec.name} (looked for {looked})",
                        f"run `python -m qhyer.data generate {spec.name} --out {folder}`")
    raise DataError(f"no file for {spec.name}, which cannot be regenerated (it needs D4RL's pretrained ant policy)",
                    f"download {D4RL_URLS[spec.name]} and save it as {folder / spec.train_file} "
                    f"(or keep its name in {d4rl_user_dir()})")


def read_d4rl_hdf5(path: str | Path, spec: DatasetSpec) -> EpisodeDataset:
    """Read a Maze2d or AntMaze file in D4RL's layout; one-line DataError for anything missing or inconsistent."""
    path = Path(path)
    fix = (f"regenerate it with `python -m qhyer.data generate {spec.name}`" if spec.regenerable
           else f"download it again from {D4RL_URLS[spec.name]}")
    if not path.is_file():
        raise DataError(f"{path} does not exist", fix)
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED_KEYS if key not in f]
            if missing:
                raise DataError(f"{path} lacks the keys {', '.join(missing)} of D4RL's layout", fix)
            arrays = {key: f[key][()] for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if key in f}
    except DataError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:  # what h5py raises on damaged files
        raise DataError(f"{path} is not a readable hdf5 file ({type(err).__name__})", fix) from None

    n = len(arrays["observations"])
    for key, dim in (("observations", spec.obs_dim), ("actions", spec.action_dim)):
        if arrays[key].shape[1:] != (dim,):
            raise DataError(f"{path}: {key} have shape {arrays[key].shape}, {spec.name} needs (N, {dim})",
                            "check that the file belongs to this dataset")
    for key in ("rewards", "terminals", "timeouts"):  # get_dataset squeezes (N, 1) flags and rewards
        if key in arrays and arrays[key].shape[1:] == (1,):
            arrays[key] = arrays[key][:, 0]
    flat = [key for key in ("rewards", "terminals", "timeouts") if key in arrays and arrays[key].ndim != 1]
    if flat:
        raise DataError(f"{path}: {', '.join(flat)} must be 1-D arrays", fix)
    lengths = {key: len(a) for key, a in arrays.items()}
    if any(length != n for length in lengths.values()):
        raise DataError(f"{path}: arrays have different lengths ({', '.join(f'{k} {v}' for k, v in lengths.items())})",
                        fix)
    if n == 0:
        raise DataError(f"{path} holds no rows", fix)

    terminals = arrays["terminals"] != 0
    timeouts = arrays["timeouts"] != 0 if "timeouts" in arrays else np.zeros(n, bool)
    ends_flag = timeouts if spec.family == "antmaze" else timeouts | terminals
    ends = np.flatnonzero(ends_flag) + 1
    if len(ends) == 0 or ends[-1] != n:
        ends = np.append(ends, n)  # the run's unflagged tail is an episode too
    meta = {"terminals": terminals}
    if "infos/goal" in arrays:
        goal = arrays["infos/goal"].astype(np.float32)
        if not np.isfinite(goal).all():
            raise DataError(f"{path}: infos/goal contains NaN or inf", fix)
        meta["goal"] = goal
    return EpisodeDataset(name=spec.name, observations=arrays["observations"], actions=arrays["actions"],
                          episode_ends=ends, goal_dims=np.asarray(spec.goal_dims),
                          rewards=arrays["rewards"].astype(np.float32), source=str(path), meta=meta)


def source_episodes(dataset: EpisodeDataset) -> EpisodeDataset:
    """Episodes as QT's and LSDT's D4RL loaders cut them (`protocol=source`): a trajectory ends at `terminals` or at
    a timeout (charleshsc/QT D4RL/create_dataset.py l.31-38; WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER
    Data/Data_with_Goal_download.py l.45-53). On AntMaze a terminal is a step within 0.5 of the goal, so a
    trajectory's return is 0 or 1 and a return-to-go says whether the goal is still ahead, as it did there; a walk
    that stays in the goal region becomes one-row trajectories (LSDT drops those: `TrajectoryWindowSampler`).
    Maze2d files already end episodes at both flags (`read_d4rl_hdf5`): unchanged."""
    return dataset.split_after(dataset.meta["terminals"])
