"""The policy interface every method implements for the shared evaluation layer.

Evaluation steps B episodes in lockstep and makes one `act` call per step for all of them. Each call
sees every episode's history so far, so sequence models can rebuild their context window; models with a
recurrent state may instead keep it themselves between calls (reset by `reset`). Episodes that already
ended stay in the batch with `active == False`; their actions are ignored. The arrays are the evaluator's
buffers: read them, do not modify them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class StepInput:
    observations: np.ndarray          # (B, obs_dim) current observation of each episode
    goals: np.ndarray                 # (B, goal_dim) goal, already in the policy's goal representation
    t: int                            # step index within the episodes (all step together)
    history_observations: np.ndarray  # (B, t + 1, obs_dim) observations so far, current one last
    history_actions: np.ndarray       # (B, t, act_dim) actions taken so far
    history_rewards: np.ndarray       # (B, t) rewards received so far
    active: np.ndarray                # (B,) bool, False once an episode has ended
    # (B,) per-episode seed, fixed by (eval seed, checkpoint step, task, episode) alone, for the stochastic sanity
    # policies (qhyer/rollout/sanity.py) so their episodes do not depend on batching; learned policies act
    # deterministically.
    episode_seeds: np.ndarray | None = None


@runtime_checkable
class Policy(Protocol):
    goal_rep: str  # 'full' (whole goal observation) or 'task' (the dataset's goal part)

    def reset(self, batch_size: int) -> None:
        """Start a new batch of episodes (clear any recurrent state)."""

    def act(self, step: StepInput) -> np.ndarray:
        """Deterministic actions (B, act_dim) in [-1, 1]."""
