"""Readers: official or regenerated dataset files → `EpisodeDataset`.

OGBench npz layout (seohongpark/ogbench `data_gen_scripts/generate_manipspace.py`): observations, actions,
terminals (True on each episode's last row), qpos, qvel, and button_states for puzzles. D4RL hdf5 files are
read by `qhyer.data.d4rl`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec, default_data_dir, get_spec, ogbench_user_dir
from qhyer.errors import DataError

OGBENCH_KEYS = ("observations", "actions", "terminals")


def read_ogbench_npz(path: str | Path, spec: DatasetSpec) -> EpisodeDataset:
    """Read an OGBench-layout npz; qpos/qvel/button_states are not needed by any method and are dropped."""
    path = Path(path)
    regenerate = f"regenerate it with `python -m qhyer.data generate {spec.name}`"
    if not path.is_file():
        raise DataError(f"{path} does not exist", regenerate)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in OGBENCH_KEYS if key not in npz.files]
            if missing:
                raise DataError(f"{path} lacks the keys {', '.join(missing)}", regenerate)
            arrays = {key: npz[key] for key in OGBENCH_KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
        raise DataError(f"{path} is truncated or corrupt ({type(err).__name__})", regenerate) from None
    obs, actions, terminals = arrays["observations"], arrays["actions"], arrays["terminals"].astype(bool)
    if len(obs) == 0:
        raise DataError(f"{path} holds no rows", f"generate {spec.name} with at least 10 episodes for a val split")
    if obs.ndim != 2 or obs.shape[1] != spec.obs_dim:
        raise DataError(f"{path}: observations have shape {obs.shape}, {spec.name} needs (N, {spec.obs_dim})",
                        "check that the file belongs to this dataset")
    if len(terminals) != len(obs):
        raise DataError(f"{path}: {len(obs)} observations but {len(terminals)} terminals", regenerate)
    ends = np.flatnonzero(terminals) + 1
    if len(ends) == 0 or ends[-1] != len(obs):
        ends = np.append(ends, len(obs))  # an unterminated last episode still counts
    return EpisodeDataset(name=spec.name, observations=obs, actions=actions, episode_ends=ends,
                          goal_dims=np.asarray(spec.goal_dims), source=str(path))


def find_ogbench_file(spec: DatasetSpec, split: str, data_dir: str | Path | None) -> Path:
    file_name = spec.train_file if split == "train" else spec.val_file
    folders = [Path(data_dir) if data_dir else default_data_dir(), ogbench_user_dir()]
    for folder in folders:
        if (folder / file_name).is_file():
            return folder / file_name
    looked = " and ".join(str(f / file_name) for f in folders)
    raise DataError(f"no {split} file for {spec.name} (looked for {looked})",
                    f"run `python -m qhyer.data generate {spec.name} --out {folders[0]}`")


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None) -> EpisodeDataset:
    """Load a dataset split by name, from `data_dir` (default ./data or $QHYER_DATA_DIR) or the user's folders."""
    spec = get_spec(name)
    if split not in ("train", "val"):
        raise DataError(f"unknown split '{split}'", "use 'train' or 'val'")
    if spec.family == "ogbench":
        return read_ogbench_npz(find_ogbench_file(spec, split, data_dir), spec)
    if split == "val":
        raise DataError(f"{spec.name} has no validation split", "D4RL datasets ship one file")
    from qhyer.data.d4rl import find_d4rl_file, read_d4rl_hdf5

    return read_d4rl_hdf5(find_d4rl_file(spec, data_dir), spec)
