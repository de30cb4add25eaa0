"""Training batches shared by every method: context windows for sequence models, single transitions for
GCIQL/HIQL/GCBC. Goals are hindsight-relabelled from the data, following OGBench's `GCDataset` and
`HGCDataset` (seohongpark/ogbench impls/utils/datasets.py).

Each sampler draws from one `np.random.Generator`; `state_dict()` holds its state and the number of batches
drawn, so a resumed run continues with exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qhyer.data.episodes import EpisodeDataset
from qhyer.errors import ConfigError


@dataclass(frozen=True)
class GoalSampling:
    """Probabilities of each relabelling mode (they sum to 1) and the discount of geometric offsets."""

    p_current: float = 0.0
    p_future_geometric: float = 0.0
    p_future_uniform: float = 1.0
    p_random: float = 0.0
    discount: float = 0.99

    def __post_init__(self) -> None:
        probs = self.probabilities
        if min(probs) < 0 or not np.isclose(sum(probs), 1.0):
            raise ConfigError(f"goal sampling probabilities must be non-negative and sum to 1 (got {probs})")
        if not 0.0 <= self.discount < 1.0:
            raise ConfigError(f"goal sampling discount must lie in [0, 1) (got {self.discount})")

    @property
    def probabilities(self) -> tuple[float, float, float, float]:
        return (self.p_current, self.p_future_geometric, self.p_future_uniform, self.p_random)


# OGBench defaults (impls/agents/gciql.py get_config): value goals and actor goals.
VALUE_GOALS = GoalSampling(p_current=0.2, p_future_geometric=0.5, p_future_uniform=0.0, p_random=0.3)
ACTOR_GOALS = GoalSampling(p_current=0.0, p_future_geometric=0.0, p_future_uniform=1.0, p_random=0.0)


def goal_of(dataset: EpisodeDataset, rows: np.ndarray, goal_rep: str) -> np.ndarray:
    """Goals at `rows`: the whole observation ('full', OGBench's default) or its task part ('task')."""
    if goal_rep == "full":
        return dataset.observations[rows]
    if goal_rep == "task":
        return dataset.goal_part(dataset.observations[rows])
    raise ConfigError(f"goal_rep must be 'full' or 'task' (got '{goal_rep}')")


class _Sampler:
    def __init__(self, dataset: EpisodeDataset, goal_rep: str, seed: int):
        goal_of(dataset, np.zeros(1, np.int64), goal_rep)  # validates goal_rep early
        self.dataset, self.goal_rep = dataset, goal_rep
        self.rng = np.random.default_rng(seed)
        self.batches_drawn = 0

    def relabel(self, rows: np.ndarray, mode: GoalSampling) -> np.ndarray:
        """Goal rows for current rows `rows` (B,): current / future-geometric / future-uniform / random."""
        ds, rng, n = self.dataset, self.rng, len(rows)
        last = ds.row_last[rows]
        choice = rng.choice(4, size=n, p=mode.probabilities)
        # Geometric offset ≥ 1, clipped at the episode's last row (GCDataset.sample_goals).
        geometric = np.minimum(rows + rng.geometric(1.0 - mode.discount, size=n), last)
        # Uniform over the rest of the episode from the next row on (GCDataset, geom_sample=False).
        first = np.minimum(rows + 1, last)
        uniform = first + np.floor(rng.random(n) * (last - first + 1)).astype(np.int64)
        random = rng.integers(0, len(ds), size=n)
        return np.select([choice == 0, choice == 1, choice == 2], [rows, geometric, uniform], random)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = state["batches_drawn"]


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in arrays.items()}


class WindowSampler(_Sampler):
    """Windows of `context_len` steps ending at a uniformly drawn current row t, one goal per window.

    History before the episode start is left padding (mask False, zeros). The goal is relabelled relative
    to t. Sparse goal reward: r_k = 1 iff row k+1 is the goal row (the successor state reaches the goal and
    the episode would terminate there); returns_to_go_k = Σ_{j≥k} r_j ∈ {0, 1} = 1 iff the goal row lies
    after k in the same episode. A goal equal to the current row t is already reached: RTG 0 at t.
    """

    def __init__(self, dataset: EpisodeDataset, context_len: int, goals: GoalSampling, goal_rep: str, seed: int):
        super().__init__(dataset, goal_rep, seed)
        if context_len < 1:
            raise ConfigError(f"context_len must be at least 1 (got {context_len})")
        self.context_len, self.goals = context_len, goals

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        ds, k = self.dataset, self.context_len
        current = self.rng.integers(0, len(ds), size=batch_size)                # (B,)
        goal_rows = self.relabel(current, self.goals)                           # (B,)
        rows = current[:, None] + np.arange(1 - k, 1)[None, :]                  # (B, K)
        start, last = ds.row_start[current][:, None], ds.row_last[current][:, None]
        mask = rows >= start                                                    # (B, K)
        rows = np.maximum(rows, start)
        same_episode = (goal_rows[:, None] >= start) & (goal_rows[:, None] <= last)
        rewards = (same_episode & (rows + 1 == goal_rows[:, None]) & mask).astype(np.float32)
        rtg = (same_episode & (goal_rows[:, None] > rows) & mask).astype(np.float32)
        zero = ~mask
        obs = ds.observations[rows]
        next_obs = ds.observations[np.minimum(rows + 1, last)]
        actions = ds.actions[rows]
        for array in (obs, next_obs, actions):
            array[zero] = 0.0
        self.batches_drawn += 1
        return _tensors({
            "observations": obs, "actions": actions, "next_observations": next_obs,
            "goals": goal_of(ds, goal_rows, self.goal_rep), "goal_rows": goal_rows.astype(np.int64),
            "timesteps": np.where(mask, rows - start, 0).astype(np.int64), "mask": mask,
            "rewards": rewards, "returns_to_go": rtg,
            "dones": ((rows == last) | (rewards > 0)) & mask,
        })


class TransitionSampler(_Sampler):
    """Single transitions (s, a, s') with value goals and actor goals, OGBench `GCDataset` semantics.

    rewards = 0 when the value goal is the current row, else −1; masks = 1 − success (gc_negative). With
    `subgoal_steps` (HIQL, `HGCDataset`): low_goals = the row `subgoal_steps` ahead (clipped at the
    episode end); high_goals = actor goals; high_targets = the row `subgoal_steps` ahead, capped at the
    high goal (at the episode end for random high goals).
    """

    def __init__(self, dataset: EpisodeDataset, value_goals: GoalSampling, actor_goals: GoalSampling,
                 goal_rep: str, seed: int, subgoal_steps: int | None = None):
        super().__init__(dataset, goal_rep, seed)
        if len(dataset.transition_rows) == 0:
            raise ConfigError(f"{dataset.name} has no transitions (every episode has a single row)")
        if subgoal_steps is not None and subgoal_steps < 1:
            raise ConfigError(f"subgoal_steps must be at least 1 (got {subgoal_steps})")
        self.value_goals, self.actor_goals, self.subgoal_steps = value_goals, actor_goals, subgoal_steps

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        ds = self.dataset
        rows = ds.transition_rows[self.rng.integers(0, len(ds.transition_rows), size=batch_size)]
        value_rows = self.relabel(rows, self.value_goals)
        actor_rows = self.relabel(rows, self.actor_goals)
        success = (rows == value_rows).astype(np.float32)
        batch = {
            "observations": ds.observations[rows], "actions": ds.actions[rows],
            "next_observations": ds.observations[rows + 1],
            "value_goals": goal_of(ds, value_rows, self.goal_rep),
            "actor_goals": goal_of(ds, actor_rows, self.goal_rep),
            "rewards": success - 1.0, "masks": 1.0 - success,
        }
        if self.subgoal_steps is not None:
            last = ds.row_last[rows]
            ahead = np.minimum(rows + self.subgoal_steps, last)
            in_episode = (actor_rows >= ds.row_start[rows]) & (actor_rows <= last)
            targets = np.where(in_episode, np.minimum(ahead, np.maximum(actor_rows, rows)), ahead)
            batch.update(low_goals=goal_of(ds, ahead, self.goal_rep), high_goals=batch["actor_goals"],
                         high_targets=goal_of(ds, targets, self.goal_rep))
        self.batches_drawn += 1
        return _tensors(batch)
