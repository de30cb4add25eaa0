"""Regenerate OGBench manipulation datasets locally with the scripted oracles shipped in the `ogbench` wheel.

Follows `data_gen_scripts/generate_manipspace.py` of seohongpark/ogbench (repository only, not in the wheel)
step for step: same env construction, oracles,
noise, random actions, task switching without resets, row layout, dtypes and train/val split. Deliberate
differences, none of which changes the data distribution:
- The official script never seeds anything. Here every episode draws all of its randomness from
  `SeedSequence(seed, spawn_key=(split, index))`, so a file is reproducible bit for bit, independent of how
  episodes are spread over worker processes, and episode i of a small run equals episode i of a large one.
- Rows go straight into preallocated arrays of their final dtype instead of Python lists of float64 arrays
  (puzzle-4x5 has 3.3M rows).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
import warnings
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import ogbench.manipspace  # noqa: F401  (registers the env ids)
from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
from tqdm import tqdm

from qhyer.data.manifest import manifest_path, write_manifest
from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.io import atomic_path

GENERATOR = "qhyer.data.ogbench_gen"

# Flag defaults of generate_manipspace.py; commands.sh overrides none of them for these datasets.
NOISE = 0.1            # play: plan noise level; noisy: upper bound of the per-episode action noise xi
NOISE_SMOOTHING = 0.5  # play: sigma (steps) of the Gaussian filter over the plan noise
MIN_NORM = 0.4         # noisy: minimum norm of the Markov oracle's relative-position command
# noisy: per-dimension Gaussian action noise std (dx, dy, dz, dyaw, dgripper) in units of xi.
XI_SCALE = np.array([1.0, 1.0, 1.0, 3.0, 10.0])

# Stored dtypes (generate_manipspace.py): bool terminals, int64 button states, float32 everything else.
_DTYPES = {"terminals": np.bool_, "button_states": np.int64}
_KEY_ORDER = ("observations", "actions", "terminals", "qpos", "qvel", "button_states")  # official npz order

TRAIN, VAL = 0, 1  # first spawn-key entry, so validation episodes never repeat a training episode


def _oracle(spec: DatasetSpec) -> tuple[type, dict[str, Any]]:
    """Oracle class and keyword arguments for a dataset, as chosen in generate_manipspace.py."""
    if spec.env_id.startswith("cube-"):
        oracles, kwargs = (CubePlanOracle, CubeMarkovOracle), {}
    elif spec.env_id.startswith("puzzle-"):
        oracles, kwargs = (ButtonPlanOracle, ButtonMarkovOracle), {"gripper_always_closed": True}
    else:
        raise ConfigError(f"no OGBench oracle for env '{spec.env_id}'", "only cube-* and puzzle-* envs are supported")
    if spec.kind == "play":
        return oracles[0], {**kwargs, "noise": NOISE, "noise_smoothing": NOISE_SMOOTHING}
    if spec.kind == "noisy":
        return oracles[1], {**kwargs, "min_norm": MIN_NORM}
    raise ConfigError(f"unknown OGBench dataset type '{spec.kind}' for {spec.name}", "use 'play' or 'noisy'")


# Per-episode stacking probability (generate_manipspace.py): U(low, high) per multi-cube env; cube-single 0 (no
# draw); puzzle envs accept and ignore the script's fixed 0.5.
P_STACK_RANGES = {"cube-double": (0.0, 0.25), "cube-triple": (0.05, 0.35), "cube-quadruple": (0.1, 0.5)}


def _draw_p_stack(env_id: str) -> float:
    stem = env_id.rsplit("-", 1)[0]
    if stem == "cube-single":
        return 0.0
    if stem in P_STACK_RANGES:
        return np.random.uniform(*P_STACK_RANGES[stem])
    return 0.5


class _EpisodeRunner:
    """One env and one oracle that roll out whole episodes, each from its own seed."""

    def __init__(self, spec: DatasetSpec, episode_length: int):
        self.spec = spec
        self.length = episode_length
        with warnings.catch_warnings():
            # gymnasium reports that OGBench's float64 space bounds are cast to float32: harmless, and it
            # would be printed by every worker.
            warnings.filterwarnings("ignore", message=".*precision lowered", category=UserWarning)
            self.env = gymnasium.make(spec.env_id, terminate_at_goal=False, mode="data_collection",
                                      max_episode_steps=episode_length)
            # OGBench's `action_space` property builds a new, unseeded Box on every access, so the official
            # script's random actions come from OS entropy; keep one instance and seed it per episode.
            self.action_space = self.env.action_space
        oracle_cls, oracle_kwargs = _oracle(spec)
        # Cube and puzzle envs have a single task type, so one oracle serves every sub-task.
        self.oracle = oracle_cls(env=self.env, **oracle_kwargs)
        self.has_buttons = hasattr(self.env.unwrapped, "_cur_button_states")

    def run(self, seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
        """Roll out one episode of exactly `length` rows; returns its arrays in their stored dtypes."""
        env, oracle, noisy = self.env, self.oracle, self.spec.kind == "noisy"
        # Three independent streams: the oracles and the script draw from global np.random, the env from its
        # gymnasium np_random, random actions from the action space's generator.
        global_seed, env_seed, action_seed = (int(s) for s in seed.generate_state(3))
        np.random.seed(global_seed)
        self.action_space.seed(action_seed)
        ob, info = env.reset(seed=env_seed)

        # Draw order as in the official loop: p_stack, then xi, then the oracle's reset.
        p_stack = _draw_p_stack(self.spec.env_id)
        xi = np.random.uniform(0, NOISE) if noisy else 0.0
        oracle.reset(ob, info)

        rows: dict[str, list[np.ndarray]] = {key: [] for key in ("observations", "actions", "qpos", "qvel")}
        if self.has_buttons:
            rows["button_states"] = []
        for t in range(self.length):
            # The uniform draw happens every step, even when p_random_action is 0, as in the official loop.
            if np.random.rand() < self.spec.p_random_action:
                action = self.action_space.sample()  # replaces the whole action; no Gaussian noise on it
            else:
                action = np.asarray(oracle.select_action(ob, info))
                if noisy:
                    action = action + np.random.normal(0, xi * XI_SCALE, action.shape)
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            if (terminated or truncated) != (t == self.length - 1):
                raise RuntimeError(f"{self.spec.env_id} ended at step {t + 1} instead of {self.length}")
            if oracle.done:
                # No reset inside an episode: pick a new sub-task from the current state and keep going.
                # The next action still sees the step's `info`, exactly as the official loop does.
                oracle.reset(*env.unwrapped.set_new_target(p_stack=p_stack))
            rows["observations"].append(ob)
            rows["actions"].append(action)
            rows["qpos"].append(info["prev_qpos"])  # MuJoCo state before the action, i.e. of `ob`
            rows["qvel"].append(info["prev_qvel"])
            if self.has_buttons:
                rows["button_states"].append(info["prev_button_states"])
            ob = next_ob

        episode = {key: np.asarray(value, dtype=_DTYPES.get(key, np.float32)) for key, value in rows.items()}
        episode["terminals"] = np.arange(self.length) == self.length - 1  # the episode ends only by truncation
        return episode


_WORKER_RUNNER: _EpisodeRunner | None = None


def _init_worker(spec: DatasetSpec, episode_length: int) -> None:
    global _WORKER_RUNNER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it terminates the pool
    _WORKER_RUNNER = _EpisodeRunner(spec, episode_length)


def _run_job(job: tuple[int, np.random.SeedSequence],
             runner: _EpisodeRunner | None = None) -> tuple[int, dict[str, np.ndarray]]:
    slot, seed = job
    return slot, (runner or _WORKER_RUNNER).run(seed)


@contextlib.contextmanager
def _rollouts(spec: DatasetSpec, episode_length: int, jobs: list[tuple[int, np.random.SeedSequence]],
              workers: int) -> Iterator[Iterable[tuple[int, dict[str, np.ndarray]]]]:
    """Yield (slot, episode) pairs as episodes finish, from this process or from a pool of `workers`."""
    if workers == 1:
        runner = _EpisodeRunner(spec, episode_length)
        state = np.random.get_state()  # episodes reseed global np.random; give the caller its stream back
        try:
            yield (_run_job(job, runner) for job in jobs)
        finally:
            np.random.set_state(state)
    else:
        # spawn: a fresh interpreter per worker, so no MuJoCo or RNG state is inherited from the parent.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(spec, episode_length)) as pool:
            yield pool.imap_unordered(_run_job, jobs)  # leaving the block terminates the workers


def generate(spec: DatasetSpec, out_dir: str | Path, *, seed: int = 0, workers: int = 1, episodes: int | None = None,
             steps: int | None = None, progress: bool = True, episode_length: int | None = None) -> dict[str, Any]:
    """Write `<name>.npz`, `<name>-val.npz` and their manifest under `out_dir`; return the manifest.

    `episodes` training episodes (default: the official count) plus `episodes // 10` validation episodes,
    each exactly `episode_length` rows (default: the official 1001). Output bytes depend only on the
    arguments, not on `workers`. On any error or interrupt no file of the dataset is left behind.
    """
    if spec.family != "ogbench":
        raise ConfigError(f"{spec.name} is not an OGBench dataset", "use the generator of its family")
    if steps is not None:
        raise ConfigError("--steps applies to Maze2d datasets only", "size OGBench datasets with --episodes")
    episodes = spec.train_episodes if episodes is None else episodes
    episode_length = spec.episode_length if episode_length is None else episode_length
    for label, value, minimum in (("episodes", episodes, 1), ("workers", workers, 1), ("seed", seed, 0),
                                  ("episode_length", episode_length, 2)):
        if value < minimum:
            raise ConfigError(f"{label} must be at least {minimum} (got {value})")
    oracle_cls, oracle_kwargs = _oracle(spec)
    if spec.env_id not in gymnasium.registry:
        raise ConfigError(f"the installed ogbench ({metadata.version('ogbench')}) does not register {spec.env_id}, "
                          f"which {spec.name} needs", "install the ogbench version of requirements (1.2.2)")

    val_episodes = episodes // 10
    jobs = [(slot, np.random.SeedSequence(seed, spawn_key=(split, index)))
            for slot, (split, index) in enumerate([(TRAIN, i) for i in range(episodes)]
                                                  + [(VAL, i) for i in range(val_episodes)])]
    start = time.perf_counter()
    data: dict[str, np.ndarray] = {}
    with _rollouts(spec, episode_length, jobs, min(workers, len(jobs))) as finished, \
            tqdm(total=len(jobs), desc=spec.name, unit="episode", disable=not progress) as bar:
        for slot, episode in finished:
            if not data:  # allocate every row of every episode once the shapes are known
                data = {key: np.empty((len(jobs) * episode_length, *value.shape[1:]), value.dtype)
                        for key, value in episode.items()}
            for key, value in episode.items():
                data[key][slot * episode_length:(slot + 1) * episode_length] = value
            bar.update()

    train_rows = episodes * episode_length
    keys = [key for key in _KEY_ORDER if key in data]
    train = {key: data[key][:train_rows] for key in keys}
    # With fewer than 10 episodes the official script saves empty 1-D arrays for the validation split.
    val = {key: data[key][train_rows:] if val_episodes else np.empty(0, data[key].dtype) for key in keys}

    out_dir = Path(out_dir)
    paths = [out_dir / spec.train_file, out_dir / spec.val_file]
    config = {
        "env_id": spec.env_id, "dataset_type": spec.kind, "oracle": oracle_cls.__name__, "oracle_kwargs": oracle_kwargs,
        "train_episodes": episodes, "val_episodes": val_episodes, "episode_length": episode_length,
        "p_random_action": spec.p_random_action,
        "action_noise_xi_max": NOISE if spec.kind == "noisy" else 0.0,
        "episode_seeds": "numpy SeedSequence(seed, spawn_key=(0 train | 1 val, episode index))",
        "reference": "seohongpark/ogbench data_gen_scripts/generate_manipspace.py",
    }  # `workers` is not part of it: it changes no byte of the output
    published = False
    try:
        with contextlib.ExitStack() as stack:
            # savez appends `.npz` to names without it, so the temporary name must already end in `.npz`.
            tmps = [stack.enter_context(atomic_path(path, suffix=".tmp.npz")) for path in paths]
            for tmp, arrays in zip(tmps, (train, val), strict=True):
                # Deterministic bytes: numpy writes zip entries with ZipInfo's fixed 1980-01-01 time stamp.
                np.savez_compressed(tmp, **arrays)
            published = True  # leaving the block renames the temporary files onto the final names
        return write_manifest(paths[0], dataset=spec.name, generator=GENERATOR, config=config, seed=seed,
                              files=paths, transitions={"train": train_rows, "val": val_episodes * episode_length},
                              wall_time_s=time.perf_counter() - start)
    except BaseException:
        if published:  # a dataset without its manifest, or half of one, is worse than none
            for path in (*paths, manifest_path(paths[0])):
                path.unlink(missing_ok=True)
        raise
