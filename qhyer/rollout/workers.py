"""Evaluation environments behind one batched interface, in this process (`LocalEnvs`) or in worker processes
(`EnvWorkers`).

The evaluator (qhyer/rollout/protocol.py) resets and steps slots 0..b-1 of a pool and calls the policy once per
step in the parent for all of them, so the model is never copied to a worker. `EnvWorkers` places slot i in worker
i mod W (a short last batch still spreads over every worker); each worker steps its slots one after another and
answers through a pipe, so W workers step W slots at a time. Messages are a few kB per step (observations of at
most `num_envs` episodes), far below the cost of a MuJoCo step, so pipes suffice.

Workers are started with the 'spawn' context: MuJoCo (and OpenMP/BLAS thread pools) are not fork-safe, and spawn
behaves the same on Linux and macOS. Each env is a pure function of its episode's seeds (qhyer/rollout/eval_env.py),
so which process steps an episode changes no result.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection

import numpy as np

from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.rollout.eval_env import EpisodeSeeds, EvalEnv

# (observations (b, obs_dim), rewards (b,), ended (b,), success (b,)) of the stepped slots, in their order
StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _reset(envs: Sequence[EvalEnv], slots: Sequence[int], episodes: Sequence[tuple[int, EpisodeSeeds]]
           ) -> tuple[np.ndarray, np.ndarray]:
    starts = [envs[slot].reset(task, seeds) for slot, (task, seeds) in zip(slots, episodes, strict=True)]
    return np.stack([obs for obs, _ in starts]), np.stack([goal for _, goal in starts])


def _step(envs: Sequence[EvalEnv], slots: Sequence[int], actions: np.ndarray) -> StepResult:
    obs, rewards, ended, success = zip(*(envs[slot].step(action) for slot, action in zip(slots, actions, strict=True)),
                                       strict=True)
    return np.stack(obs), np.array(rewards, np.float64), np.array(ended, bool), np.array(success, bool)


class _Pool:
    """A context manager that closes the pool on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class LocalEnvs(_Pool):
    """Environments in this process."""

    def __init__(self, envs: Sequence[EvalEnv]):
        self.envs = list(envs)
        self.spec, self.horizon = self.envs[0].spec, self.envs[0].horizon

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, episodes: Sequence[tuple[int, EpisodeSeeds]]) -> tuple[np.ndarray, np.ndarray]:
        """Start (task, seeds) episodes in slots 0..len(episodes)-1; (observations, goal observations)."""
        return _reset(self.envs, range(len(episodes)), episodes)

    def step(self, slots: np.ndarray, actions: np.ndarray) -> StepResult:
        """Step each of `slots` (non-empty) with its row of `actions`."""
        return _step(self.envs, slots, actions)

    def close(self) -> None:
        """Nothing to release."""


def _worker_main(conn: Connection, spec: DatasetSpec, horizon: int, n_envs: int) -> None:
    """A worker's loop: build its envs, then answer ('reset' | 'step', slots, payload) until 'close'.
    Slots here are the worker's own (0..n_envs-1). Any error is sent back as ('error', traceback)."""
    try:
        envs = [EvalEnv(spec, horizon) for _ in range(n_envs)]
        conn.send(("ok", None))
        while True:
            command, slots, payload = conn.recv()
            if command == "close":
                return
            conn.send(("ok", _reset(envs, slots, payload) if command == "reset" else _step(envs, slots, payload)))
    except (EOFError, KeyboardInterrupt):  # the parent went away or was interrupted: just end
        return
    except Exception:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        conn.send(("error", traceback.format_exc()))


def _stop(processes: list, conns: list[Connection]) -> None:
    for conn in conns:
        try:
            conn.send(("close", None, None))
        except (BrokenPipeError, OSError):
            pass
        conn.close()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()


class EnvWorkers(_Pool):
    """`n_envs` environments spread over `workers` processes; slot i lives in worker i mod `workers`.

    Use as a context manager (or call `close`); the workers are also stopped when the pool is garbage-collected.
    """

    def __init__(self, spec: DatasetSpec, horizon: int, n_envs: int, workers: int):
        if workers < 1 or n_envs < 1:
            raise ConfigError(f"an env pool needs workers >= 1 and n_envs >= 1 (got {workers}, {n_envs})")
        self.spec, self.horizon, self.n_envs = spec, horizon, n_envs
        self.workers = min(workers, n_envs)
        context = mp.get_context("spawn")
        self._conns, self._processes = [], []
        for w in range(self.workers):
            parent, child = context.Pipe()
            own_envs = len(range(w, n_envs, self.workers))
            process = context.Process(target=_worker_main, args=(child, spec, horizon, own_envs), daemon=True,
                                      name=f"qhyer-eval-worker-{w}")
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)
        self._finalizer = weakref.finalize(self, _stop, self._processes, self._conns)
        for w in range(self.workers):  # wait until every worker has built its envs (or failed)
            self._receive(w)

    def __len__(self) -> int:
        return self.n_envs

    def close(self) -> None:
        self._finalizer()

    def _receive(self, worker: int):
        try:
            status, payload = self._conns[worker].recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"evaluation worker {worker} of {self.spec.name} died") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"evaluation worker {worker} of {self.spec.name} failed:\n{payload}")
        return payload

    def _scatter(self, command: str, slots: np.ndarray, payload: Sequence) -> list:
        """Send each worker its share of `slots` (with their payload rows), then gather the answers, so all
        workers run at once; returns, per worker, (positions in `slots`, answer)."""
        owners = slots % self.workers
        sent = []
        for w in range(self.workers):
            positions = np.flatnonzero(owners == w)
            if len(positions):
                self._conns[w].send((command, (slots[positions] // self.workers).tolist(),
                                     [payload[i] for i in positions] if command == "reset" else payload[positions]))
                sent.append((w, positions))
        return [(positions, self._receive(w)) for w, positions in sent]

    def reset(self, episodes: Sequence[tuple[int, EpisodeSeeds]]) -> tuple[np.ndarray, np.ndarray]:
        answers = self._scatter("reset", np.arange(len(episodes)), episodes)
        return tuple(_gather(len(episodes), [(p, a[i]) for p, a in answers]) for i in range(2))

    def step(self, slots: np.ndarray, actions: np.ndarray) -> StepResult:
        answers = self._scatter("step", np.asarray(slots), np.asarray(actions))
        return tuple(_gather(len(slots), [(p, a[i]) for p, a in answers]) for i in range(4))


def _gather(n: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of the workers' answers put back at their positions."""
    first = parts[0][1]
    out = np.empty((n, *first.shape[1:]), first.dtype)
    for positions, rows in parts:
        out[positions] = rows
    return out
