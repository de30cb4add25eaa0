"""The one in-memory dataset structure every method trains on.

Rows are the concatenation of episodes: row i holds the state s_i and the action a_i taken in it.
`episode_ends` are exclusive ends, so episode e spans rows [episode_starts[e], episode_ends[e]).
The last row of an episode has no successor state; samplers never use it as a transition source.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from qhyer.errors import DataError


@dataclass(eq=False)
class EpisodeDataset:
    name: str
    observations: np.ndarray      # (N, obs_dim) float32
    actions: np.ndarray           # (N, act_dim) float32
    episode_ends: np.ndarray      # (E,) int64, strictly increasing, last == N
    goal_dims: np.ndarray         # (G,) int64: the task-relevant goal part of an observation
    rewards: np.ndarray | None = None   # (N,) float32 stored rewards (D4RL), None for OGBench
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = np.ascontiguousarray(self.observations, dtype=np.float32)
        self.actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        self.episode_ends = np.asarray(self.episode_ends, dtype=np.int64)
        self.goal_dims = np.asarray(self.goal_dims, dtype=np.int64)
        self.validate()

    def validate(self) -> None:
        where = self.source or self.name
        n = len(self.observations)
        if self.observations.ndim != 2 or self.actions.ndim != 2:
            raise DataError(f"{where}: observations and actions must be 2-D arrays",
                            "regenerate the file with `python -m qhyer.data generate`")
        if len(self.actions) != n or (self.rewards is not None and len(self.rewards) != n):
            raise DataError(f"{where}: mismatched lengths (observations {n}, actions {len(self.actions)})",
                            "the file is inconsistent; regenerate or re-download it")
        if n == 0:
            raise DataError(f"{where}: the dataset has no rows", "generate it with more episodes")
        ends = self.episode_ends
        if len(ends) == 0 or ends[-1] != n or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
            raise DataError(f"{where}: episode boundaries do not partition the {n} rows",
                            "the terminals/timeouts flags are corrupt; regenerate the file")
        for label, array in (("observations", self.observations), ("actions", self.actions),
                             ("rewards", self.rewards)):
            if array is not None and not np.isfinite(array).all():
                raise DataError(f"{where}: {label} contain NaN or inf", "regenerate or re-download the file")
        if self.goal_dims.size and self.goal_dims.max() >= self.observations.shape[1]:
            raise DataError(f"{where}: observation size {self.observations.shape[1]} is too small for its "
                            "goal part", "check that the file belongs to this dataset name")

    # --- sizes --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.observations)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    # --- episode structure (per row) -----------------------------------------------------------------
    @cached_property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    @cached_property
    def episode_index(self) -> np.ndarray:
        """(N,) episode id of each row."""
        return np.repeat(np.arange(self.num_episodes), np.diff(np.concatenate([[0], self.episode_ends])))

    @cached_property
    def row_start(self) -> np.ndarray:
        """(N,) first row of the episode that contains each row."""
        return self.episode_starts[self.episode_index]

    @cached_property
    def row_last(self) -> np.ndarray:
        """(N,) last row (inclusive) of the episode that contains each row."""
        return self.episode_ends[self.episode_index] - 1

    @cached_property
    def transition_rows(self) -> np.ndarray:
        """Rows with a successor state in the same episode (every row but each episode's last)."""
        return np.flatnonzero(np.arange(len(self)) < self.row_last)

    def split_after(self, flags: np.ndarray) -> EpisodeDataset:
        """The same rows, with an episode also ending after every row where `flags` (N,) is True."""
        return dataclasses.replace(self, episode_ends=np.union1d(self.episode_ends, np.flatnonzero(flags) + 1))

    def goal_part(self, observations: np.ndarray) -> np.ndarray:
        """Task-relevant part of observations (object positions, button states, maze xy)."""
        return observations[..., self.goal_dims]

    def statistics(self) -> dict[str, np.ndarray]:
        """Per-dimension mean/std used to standardise inputs (std floored to avoid division by ~0)."""
        obs_std = self.observations.std(0)
        return {"obs_mean": self.observations.mean(0), "obs_std": np.maximum(obs_std, 1e-6)}
