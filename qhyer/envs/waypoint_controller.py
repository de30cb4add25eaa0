"""D4RL's Maze2d waypoint controller (Farama-Foundation/D4RL `d4rl/pointmaze/waypoint_controller.py`), noise-free.

It belongs to the point-maze environment: data generation (qhyer/data/maze2d_gen.py, plus action noise) and the
Maze2d sanity oracle (qhyer/rollout/sanity.py) both drive it.
"""

from __future__ import annotations

import numpy as np

from qhyer.envs.maze2d import MazeLayout

P_GAIN, D_GAIN = 10.0, -1.0
SOLVE_THRESH = VEL_THRESH = 0.1
Q_ITERATIONS, DISCOUNT = 50, 0.99
MAX_WAYPOINTS = 100           # length cap of the greedy grid rollout
WAYPOINT_JITTER = 0.2         # intermediate waypoint = cell - 0.2 * U(0, 1) per axis
# gridcraft moves (`d4rl/pointmaze/gridcraft/grid_env.py` ACT_DICT) in (row, col): NOOP, UP, DOWN, LEFT, RIGHT.
# The order matters: argmax over equal Q-values takes the first, which picks D4RL's path among equal ones.
MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)])

class WaypointController:
    """D4RL's maze2d waypoint controller (`waypoint_controller.py`), noise-free.

    On a new target cell it runs Q-iteration on the cell grid and rolls the greedy policy out into a list of
    waypoints (each intermediate one jittered by `rng`); it then steers with PD control toward the current
    waypoint and advances when within SOLVE_THRESH of it while moving less than VEL_THRESH per step.
    The same class drives data generation (plus action noise) and serves as the Maze2d sanity oracle.
    """

    def __init__(self, layout: MazeLayout, rng: np.random.Generator):
        self.layout, self.rng = layout, rng
        self._next_state = self._transitions(layout.walls)
        self._target_cell: tuple[int, int] | None = None
        self._target = np.zeros(2)
        self._waypoints: list[np.ndarray] = []
        self._index = 0
        self._prev_position = np.zeros(2)

    @staticmethod
    def _transitions(walls: np.ndarray) -> np.ndarray:
        """(cells, 5) next cell of each move; moves into walls or off the grid stay put (TransitionModel, teps=0)."""
        rows, cols = walls.shape
        r, c = np.divmod(np.arange(rows * cols), cols)
        nr, nc = r[:, None] + MOVES[:, 0], c[:, None] + MOVES[:, 1]
        inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
        legal = inside & ~walls[np.clip(nr, 0, rows - 1), np.clip(nc, 0, cols - 1)]
        return np.where(legal, nr * cols + nc, np.arange(rows * cols)[:, None])

    @staticmethod
    def _cell(xy: np.ndarray) -> tuple[int, int]:
        return int(round(xy[0])), int(round(xy[1]))  # `gridify_state` (Python round: half to even)

    def _plan(self, position: np.ndarray, target_cell: tuple[int, int]) -> None:
        """`_new_target`: tabular Q-iteration (reward 1 in the target cell) and a greedy rollout to waypoints."""
        cols = self.layout.shape[1]
        goal = target_cell[0] * cols + target_cell[1]
        reward = (np.arange(len(self._next_state)) == goal).astype(np.float64)
        q = np.zeros(self._next_state.shape)
        for _ in range(Q_ITERATIONS):
            q = reward[:, None] + DISCOUNT * q.max(1)[self._next_state]
        start = self._cell(position)
        state, waypoints = start[0] * cols + start[1], []
        for _ in range(MAX_WAYPOINTS):
            state = self._next_state[state, np.argmax(q[state])]
            waypoint = np.array(divmod(state, cols), dtype=np.float64)
            if state != goal:
                waypoint -= self.rng.uniform(size=2) * WAYPOINT_JITTER
            waypoints.append(waypoint)
            if state == goal:
                break
        self._waypoints, self._index = waypoints, 0
        self._prev_position = np.array(start, dtype=np.float64)
        self._target_cell, self._target = target_cell, np.array(target_cell, dtype=np.float64)

    def act(self, position: np.ndarray, velocity: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
        """(action in [-1, 1], solved): `get_action`, where solved = at the target cell and nearly still."""
        target_cell = self._cell(target)
        if target_cell != self._target_cell:
            self._plan(position, target_cell)
        moved = np.linalg.norm(self._prev_position - position)  # displacement since the last call
        solved = np.linalg.norm(position - self._target) < SOLVE_THRESH and moved < VEL_THRESH
        waypoint = self._target if solved else self._waypoints[self._index]
        action = P_GAIN * (waypoint - position) + D_GAIN * velocity
        if not solved and np.linalg.norm(position - waypoint) < SOLVE_THRESH and moved < VEL_THRESH:
            # The last waypoint is the target cell itself, so reaching it counts as solved before this runs off.
            self._index += 1
        self._prev_position = np.array(position, dtype=np.float64)
        return np.clip(action, -1.0, 1.0), bool(solved)
