"""Training batches shared by every method: context windows for sequence models, single transitions for
GCIQL/HIQL/GCBC. Goals are hindsight-relabelled from the data, following OGBench's `GCDataset.sample_goals`
and `HGCDataset.sample` (seohongpark/ogbench impls/utils/datasets.py).

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

# Relabelling modes, in the order of `GoalSampling.probabilities`.
CURRENT, FUTURE_GEOMETRIC, FUTURE_UNIFORM, RANDOM = range(4)


@dataclass(frozen=True)
class GoalSampling:
    """Probabilities of each relabelling mode (they sum to 1) and the discount of geometric offsets.

    OGBench has one trajectory-goal probability plus a `geom_sample` switch; the two future modes here let a
    config mix both. Future goals are never the current row unless it is the last one goals may come from.
    """

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


def goal_of(dataset: EpisodeDataset, rows: np.ndarray, goal_rep: str) -> np.ndarray:
    """Goals at `rows` (...,): the whole observation ('full', OGBench's default) or its task part ('task')."""
    if goal_rep == "full":
        return dataset.observations[rows]
    if goal_rep == "task":
        return dataset.goal_part(dataset.observations[rows])
    raise ConfigError(f"goal_rep must be 'full' or 'task' (got '{goal_rep}')")


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in arrays.items()}


class _Sampler:
    """RNG, resumable state and goal relabelling over a goal range per row and a pool of random goals."""

    def __init__(self, dataset: EpisodeDataset, goal_rep: str, seed: int, final: np.ndarray,
                 random_pool: np.ndarray | None):
        goal_of(dataset, np.zeros(1, np.int64), goal_rep)  # rejects an unknown goal_rep before training starts
        self.dataset, self.goal_rep = dataset, goal_rep
        self.final = final              # (N,) last row a future goal of each row may be
        self.random_pool = random_pool  # rows random goals are drawn from; None = every row
        self.rng = np.random.default_rng(seed)
        self.batches_drawn = 0

    def relabel(self, rows: np.ndarray, mode: GoalSampling) -> tuple[np.ndarray, np.ndarray]:
        """Goal rows (B,) for current rows `rows` (B,), and the mode (B,) each one was drawn with."""
        rng, n = self.rng, len(rows)
        final = self.final[rows]
        modes = rng.choice(4, size=n, p=mode.probabilities)
        # GCDataset.sample_goals, geom_sample=True: offset ~ Geometric(1 − discount) ≥ 1, clipped at `final`.
        geometric = np.minimum(rows + rng.geometric(1.0 - mode.discount, size=n), final)
        # geom_sample=False: round(first·d + final·(1 − d)), d ~ U[0, 1), first = min(row + 1, final). Uniform over
        # first..final except that rounding gives both ends half the weight of the rows between them.
        d = rng.random(n)
        uniform = np.round(np.minimum(rows + 1, final) * d + final * (1.0 - d)).astype(np.int64)
        if self.random_pool is None:
            random = rng.integers(0, len(self.dataset), size=n)
        else:
            random = self.random_pool[rng.integers(0, len(self.random_pool), size=n)]
        return np.choose(modes, (rows, geometric, uniform, random)), modes

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = state["batches_drawn"]


class WindowSampler(_Sampler):
    """Windows of `context_len` (K) consecutive steps ending at a uniformly drawn row t.

    Every row can end a window. History before the episode start is left padding: mask False, zeros, timestep 0.

    With `goals` (relabelled protocol), one goal row g per window, relabelled relative to t (future goals lie in
    (t, last row of the episode], t itself only when t is that last row); every row can be a goal (an episode's last
    row has a stored action and state, though no successor). Rewards and returns-to-go are index-based, as OGBench's
    relabelled rewards are (exact and cheap), with g counted as reached only within t's episode:
    - r_k = 1 iff row k + 1 is g: the successor of step k is the goal state, where the episode would end;
    - returns_to_go_k = Σ_{j ≥ k} r_j, undiscounted and in {0, 1}: 1 iff g lies after k in the episode.
    So when g = t (current-state goals) the goal is already reached at t: RTG_t = 0, and the step before t,
    if in the window, has r = 1 and RTG 1. Goals before the window or in other episodes give zeros.
    dones_k = r_k = 1 or k is the episode's last row (next_observations repeats the observation there).

    With `goals=None` (source protocol, D4RL files): the dataset's own rewards r_k (unscaled), returns_to_go_k =
    Σ_{j=k}^{episode end} r_j / reward_scale (QT experiment.py `discount_cumsum(..., 1.) / scale`, LSDT
    D4RLTrajectoryDataset), goals (B, K, 2) = D4RL's recorded `infos/goal` of each step and dones_k = D4RL's
    `terminals` flag.
    """

    def __init__(self, dataset: EpisodeDataset, context_len: int, goals: GoalSampling | None, goal_rep: str, seed: int,
                 reward_scale: float = 1.0):
        super().__init__(dataset, goal_rep, seed, final=dataset.row_last, random_pool=None)
        if context_len < 1:
            raise ConfigError(f"context_len must be at least 1 (got {context_len})")
        self.context_len, self.goals, self.reward_scale = context_len, goals, reward_scale
        self.offsets = np.arange(1 - context_len, 1)   # (K,) window rows relative to t
        if goals is None:
            if dataset.rewards is None or "goal" not in dataset.meta:
                raise ConfigError(f"{dataset.name} has no stored rewards and goals (the source protocol needs a D4RL "
                                  "file)", "use protocol=relabelled")
            # Σ_{j=i}^{last(i)} r_j per row, from one cumulative sum (float64: 1M-row sums stay exact).
            total = np.concatenate([[0.0], np.cumsum(dataset.rewards, dtype=np.float64)])
            self.reward_to_go = total[dataset.row_last + 1] - total[:-1]

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        ds = self.dataset
        current = self.window_ends(batch_size)                                   # (B,) t
        start, last = ds.row_start[current][:, None], ds.row_last[current][:, None]  # (B, 1)
        rows = current[:, None] + self.offsets                                   # (B, K)
        mask = rows >= start                                                     # (B, K) True = real step
        rows = np.maximum(rows, start)       # padding reads the first row, zeroed below
        obs = ds.observations[rows]                                              # (B, K, obs)
        next_obs = ds.observations[np.minimum(rows + 1, last)]                   # (B, K, obs)
        actions = ds.actions[rows]                                               # (B, K, act)
        for array in (obs, next_obs, actions):
            array[~mask] = 0.0
        targets = (self._relabelled(current, rows, mask, start, last) if self.goals is not None
                   else self._recorded(rows, mask))
        self.batches_drawn += 1
        return _tensors({
            "observations": obs, "actions": actions, "next_observations": next_obs,
            "timesteps": np.where(mask, rows - start, 0), "mask": mask, **targets,
        })

    def window_ends(self, batch_size: int) -> np.ndarray:
        """The last row t of each window (B,): uniform over the rows."""
        return self.rng.integers(0, len(self.dataset), size=batch_size)

    def _relabelled(self, current: np.ndarray, rows: np.ndarray, mask: np.ndarray, start: np.ndarray,
                    last: np.ndarray) -> dict[str, np.ndarray]:
        goal_rows, _ = self.relabel(current, self.goals)                         # (B,)
        goal = goal_rows[:, None]                                                # (B, 1)
        goal_in_episode = (goal >= start) & (goal <= last)
        rewards = mask & goal_in_episode & (rows + 1 == goal)                    # (B, K)
        return {"goals": goal_of(self.dataset, goal_rows, self.goal_rep), "goal_rows": goal_rows,
                "rewards": rewards.astype(np.float32),
                "returns_to_go": (mask & goal_in_episode & (rows < goal)).astype(np.float32),
                "dones": mask & (rewards | (rows == last))}

    def _recorded(self, rows: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        ds = self.dataset
        goals = ds.meta["goal"][rows]                                            # (B, K, 2)
        goals[~mask] = 0.0
        return {"goals": goals, "rewards": np.where(mask, ds.rewards[rows], 0.0).astype(np.float32),
                "returns_to_go": np.where(mask, self.reward_to_go[rows] / self.reward_scale, 0.0).astype(np.float32),
                "dones": mask & ds.meta["terminals"][rows]}


class TrajectoryWindowSampler(WindowSampler):
    """LSDT's source-protocol batches (WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER decision_transformer/utils_o.py
    `D4RLTrajectoryDataset`, l.177-227): a trajectory drawn uniformly (l.177 `__len__` = trajectories), then a full
    window of K rows starting at si ~ U{0, …, len − K} (l.184-195), or the whole trajectory when it is shorter than K
    (l.197-223). Targets as `WindowSampler` with `goals=None` (recorded rewards, returns-to-go and goals).

    Trajectories of one row are never drawn: LSDT's loader does not keep them (Data/Data_with_Goal_download.py l.58).
    Intended differences: LSDT's DataLoader shuffles, so each trajectory is drawn once per epoch, where this draws
    with replacement (the same distribution per draw); a short trajectory is padded on the left here, on the right
    there, which the causal mask makes equivalent (baselines/lsdt.py).
    """

    def __init__(self, dataset: EpisodeDataset, context_len: int, seed: int, reward_scale: float):
        super().__init__(dataset, context_len, goals=None, goal_rep="task", seed=seed, reward_scale=reward_scale)
        self.lengths = np.diff(dataset.episode_starts, append=len(dataset))
        self.trajectories = np.flatnonzero(self.lengths > 1)
        if len(self.trajectories) == 0:
            raise ConfigError(f"{dataset.name} has no trajectory longer than one row")

    def window_ends(self, batch_size: int) -> np.ndarray:
        episode = self.trajectories[self.rng.integers(0, len(self.trajectories), size=batch_size)]
        length = self.lengths[episode]
        first = self.rng.integers(0, np.maximum(length - self.context_len, 0) + 1)        # si (0 when len < K)
        return self.dataset.episode_starts[episode] + np.minimum(first + self.context_len, length) - 1


class TransitionSampler(_Sampler):
    """Single transitions (s, a, s') with value and actor goals: OGBench's `GCDataset.sample`, with
    `HGCDataset.sample`'s subgoals when `subgoal_steps` is set (impls/utils/datasets.py).

    OGBench's agents load the compact dataset (impls/utils/env_utils.py, `compact_dataset=True`), whose
    terminals mark each episode's last two rows and whose `valids` exclude the last one. So transition sources,
    random goals and the clip of future goals (`final_state_idxs`) are all rows with a successor: an episode's
    last observation is never a goal. Keys (B = batch):
    - observations, actions, next_observations (B, obs/act/obs); value_goals, actor_goals (B, goal);
    - rewards = 0 if the value goal row is the current row else −1, masks = 1 − success (`gc_negative`);
    - with subgoal_steps k: low_goals = row min(t + k, final); high_goals = actor_goals; high_targets = row
      min(t + k, high goal row) for trajectory goals, min(t + k, final) for random ones. HGCDataset draws
      high goals as trajectory-or-random and ignores `actor_p_curgoal`; a current-row actor goal here is a
      trajectory goal at offset 0 (target t), which is the same thing when p_current = 0 as in OGBench.
    """

    def __init__(self, dataset: EpisodeDataset, value_goals: GoalSampling, actor_goals: GoalSampling,
                 goal_rep: str, seed: int, subgoal_steps: int | None = None):
        if len(dataset.transition_rows) == 0:
            raise ConfigError(f"{dataset.name} has no transitions (every episode has a single row)")
        if subgoal_steps is not None and subgoal_steps < 1:
            raise ConfigError(f"subgoal_steps must be at least 1 (got {subgoal_steps})")
        # Last rows get row_last − 1 too; they are never transition sources, so it is never read for them.
        super().__init__(dataset, goal_rep, seed, final=dataset.row_last - 1, random_pool=dataset.transition_rows)
        self.value_goals, self.actor_goals, self.subgoal_steps = value_goals, actor_goals, subgoal_steps

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        ds = self.dataset
        rows = ds.transition_rows[self.rng.integers(0, len(ds.transition_rows), size=batch_size)]  # (B,)
        value_rows, _ = self.relabel(rows, self.value_goals)
        actor_rows, actor_modes = self.relabel(rows, self.actor_goals)
        success = (rows == value_rows).astype(np.float32)
        batch = {
            "observations": ds.observations[rows], "actions": ds.actions[rows],
            "next_observations": ds.observations[rows + 1],
            "value_goals": goal_of(ds, value_rows, self.goal_rep),
            "actor_goals": goal_of(ds, actor_rows, self.goal_rep),
            "rewards": success - 1.0, "masks": 1.0 - success,
        }
        if self.subgoal_steps is not None:
            ahead = np.minimum(rows + self.subgoal_steps, self.final[rows])
            targets = np.where(actor_modes == RANDOM, ahead, np.minimum(rows + self.subgoal_steps, actor_rows))
            batch.update(low_goals=goal_of(ds, ahead, self.goal_rep), high_goals=batch["actor_goals"],
                         high_targets=goal_of(ds, targets, self.goal_rep))
        self.batches_drawn += 1
        return _tensors(batch)
