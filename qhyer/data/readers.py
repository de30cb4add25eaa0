"""Readers: official or regenerated dataset files → `EpisodeDataset`.

OGBench npz layout (seohongpark/ogbench `data_gen_scripts/generate_manipspace.py`, read by `ogbench/utils.py`
`load_dataset`): observations (N, obs_dim), actions (N, act_dim), terminals (N,) True on each episode's last
row, qpos/qvel, and button_states for puzzles. No method needs qpos/qvel/button_states, so they are not read
(they are larger than the observations). D4RL hdf5 files are read by `qhyer.data.d4rl`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DatasetSpec, default_data_dir, get_spec, ogbench_user_dir
from qhyer.errors import ConfigError, DataError

OGBENCH_KEYS = ("observations", "actions", "terminals")


def read_ogbench_npz(path: str | Path, spec: DatasetSpec) -> EpisodeDataset:
    """Read an OGBench-layout npz for `spec`; any problem with the file is a one-line `DataError`."""
    path = Path(path)
    fix = f"regenerate it with `python -m qhyer.data generate {spec.name}`"
    if not path.is_file():
        raise DataError(f"{path} does not exist", fix)
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single .npy array, not an npz archive", fix)
        with npz:
            missing = [key for key in OGBENCH_KEYS if key not in npz.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}, which OGBench's layout requires", fix)
            arrays = {key: npz[key] for key in OGBENCH_KEYS}
    except DataError:
        raise
    except Exception as err:
        # A damaged npz fails in the zip layer (BadZipFile, CRC), the deflate stream (zlib.error), the npy header
        # (ValueError, SyntaxError, tokenize errors) or the array size (MemoryError): all mean the same to a user.
        raise DataError(f"{path} is truncated or corrupt ({type(err).__name__})", fix) from None

    obs, actions, terminals = arrays.values()
    if obs.size == 0:  # the generator writes an empty val file when it made fewer than 10 episodes
        raise DataError(f"{path} holds no rows", f"generate {spec.name} with at least 10 episodes")
    not_numeric = [key for key, array in arrays.items() if array.dtype.kind not in "biuf"]
    if not_numeric:
        raise DataError(f"{path}: {', '.join(not_numeric)} are not numeric arrays", fix)
    for key, array, dim in (("observations", obs, spec.obs_dim), ("actions", actions, spec.action_dim)):
        if array.shape[1:] != (dim,):
            raise DataError(f"{path}: {key} have shape {array.shape}, {spec.name} needs (N, {dim})",
                            "check that the file belongs to this dataset")
    if terminals.shape != (len(obs),):
        raise DataError(f"{path}: {len(obs)} observations but terminals of shape {terminals.shape}", fix)
    terminals = terminals != 0
    if not terminals[-1]:  # OGBench's GCDataset asserts the same: every episode, the last included, is closed
        raise DataError(f"{path}: the last row is not marked terminal, so the last episode is cut off", fix)
    # Lengths of actions, finiteness and boundaries are checked by EpisodeDataset.validate.
    return EpisodeDataset(name=spec.name, observations=obs, actions=actions,
                          episode_ends=np.flatnonzero(terminals) + 1, goal_dims=np.asarray(spec.goal_dims),
                          source=str(path))


def find_ogbench_file(spec: DatasetSpec, split: str, data_dir: str | Path | None = None) -> Path:
    """`<name>.npz` (train) or `<name>-val.npz` (val) in `data_dir` (default ./data or $QHYER_DATA_DIR), then in
    OGBench's download folder (~/.ogbench/data), which `ogbench.make_env_and_datasets` also reads."""
    file_name = spec.train_file if split == "train" else spec.val_file
    folders = [Path(data_dir) if data_dir else default_data_dir(), ogbench_user_dir()]
    for folder in folders:
        if (folder / file_name).is_file():
            return folder / file_name
    looked = " and ".join(str(folder / file_name) for folder in folders)
    raise DataError(f"no {split} file for {spec.name} (looked for {looked})",
                    f"run `python -m qhyer.data generate {spec.name} --out {folders[0]}`")


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None) -> EpisodeDataset:
    """Load a dataset split by name (canonical or without `-v*`) from `data_dir` or the user's download folders."""
    spec = get_spec(name)
    if split not in ("train", "val"):
        raise ConfigError(f"unknown split '{split}'", "use 'train' or 'val'")
    if spec.family == "ogbench":
        return read_ogbench_npz(find_ogbench_file(spec, split, data_dir), spec)
    if split == "val":  # a DataError, like a missing val file, so callers can skip validation uniformly
        raise DataError(f"{spec.name} has no validation split", "D4RL datasets ship a single file")
    from qhyer.data.d4rl import find_d4rl_file, read_d4rl_hdf5  # lazily: h5py is only needed for D4RL

    return read_d4rl_hdf5(find_d4rl_file(spec, data_dir), spec)
