"""D4RL Maze2d and AntMaze (v2) evaluation environments, in D4RL's coordinates, on the `mujoco` bindings.

The `d4rl` package cannot run on a modern stack (it needs mujoco-py and gym 0.23), so both models are rebuilt
here from D4RL's definitions:

Maze2d (Farama-Foundation/D4RL `d4rl/pointmaze/maze_model.py`: `point_maze`, `MazeEnv`). The MJCF is built from
the maze strings exactly as `point_maze()` does (visual-only elements left out). This was chosen over wrapping
gymnasium-robotics PointMaze because D4RL's own frame then needs no coordinate map: x = maze row, y = maze
column, the particle body sits at world (1.2, 1.2) and wall (r, c) at world (r + 1, c + 1), so a cell's
integer coordinates (used for resets, targets and the goal) lie 0.2 from its geometric centre. A step clips
qvel to [-5, 5] (then `mj_forward`, as mujoco-py's `set_state` does), sets ctrl = clip(action, -1, 1) and runs
one `mj_step`; observation = (x, y, vx, vy); sparse reward = 1 within 0.5 of the target, on the post-step
state; no termination. Reset: uniform empty-or-goal cell + U(-0.1, 0.1) per axis, qvel ~ N(0, 0.1^2).
Evaluation (maze2d-*-v1, `reset_target=False`): fixed target = the 'G' cell; return = steps within 0.5.

AntMaze (`d4rl/locomotion/{ant,maze_env,goal_reaching_env,wrappers}.py`, antmaze-*-v2). D4RL's `ant.xml` is the
classic gym ant with three physics changes; the model here is gymnasium's installed `ant.xml` with exactly
those changes applied (timestep 0.02, default geom solref ".02 1" / solimp ".8 .8 .01", motors with gear 1 and
ctrlrange +-30), plus D4RL's maze blocks (scaling 4, height 2, origin at the reset cell (1, 1), so
x = 4 (col - 1), y = 4 (row - 1)). Actions in [-1, 1] are scaled to +-30 (`NormalizedBoxEnv`); 5 substeps per
step (dt 0.1). Observation = qpos[:15] + qvel[:14] (29-D). Reset (v2): start = model pose + U(-0.1, 0.1) on
every qpos entry, qvel ~ N(0, 0.1^2); a new goal per episode = 'G' cell + U(0, 1) + U(0, 0.5) per axis
(one-sided, clipped at 0). Reward 1 and termination at the first step within 0.5 of the goal.
Checked once against the originals (D4RL's `point_maze()` MJCF; D4RL's `ant.xml` plus blocks as `MazeEnv`
writes them): on `mujoco` 4 both step bit-identically to the models here over thousands of random steps.
Remaining difference: the engine, MuJoCo 4 instead of 2.1 (mujoco-py). Negligible for the point mass; it
may change ant contact dynamics slightly (magnitude unverified: no D4RL runtime exists to compare with),
so AntMaze scores are close to, but not guaranteed equal to, those on D4RL's simulator. D4RL's own random
draws (partly global `np.random`) come from the env's seeded generator here: episodes are reproducible, but
not draw-for-draw equal to D4RL's.

Both envs follow the gymnasium API with a seedable `reset(seed=...)`; `info['goal']` holds a goal
*observation* (OGBench convention) and `info['success']` whether the agent is within 0.5 of the target.
D4RL mazes define only a goal position, so the goal observation is the agent resting at the goal (Maze2d:
(x, y, 0, 0); AntMaze: the model's standing pose moved to the goal, zero velocity), as OGBench's locomotion
mazes build theirs (`ogbench/locomaze/maze.py`, `reset`); its goal part (`DatasetSpec.goal_dims`) is the xy.
"""

from __future__ import annotations

import functools
import importlib.resources
import xml.etree.ElementTree as ET

import gymnasium
import mujoco
import numpy as np

from qhyer.errors import ConfigError

# Wall layouts of D4RL maze2d U_MAZE, MEDIUM_MAZE, LARGE_MAZE (`maze_model.py`): '#' wall, 'O' empty, 'G' the
# Maze2d evaluation goal. D4RL's AntMaze test maps (`maze_env.py`: U_MAZE_TEST, BIG_MAZE_TEST, HARDEST_MAZE_TEST)
# have the same walls, with the reset cell at (1, 1) and their own goal cells (ANTMAZE_GOAL_CELLS).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "umaze": ("#####",
              "#GOO#",
              "###O#",
              "#OOO#",
              "#####"),
    "medium": ("########",
               "#OO##OO#",
               "#OO#OOO#",
               "##OOO###",
               "#OO#OOO#",
               "#O#OO#O#",
               "#OOO#OG#",
               "########"),
    "large": ("############",
              "#OOOO#OOOOO#",
              "#O##O#O#O#O#",
              "#OOOOOO#OOO#",
              "#O####O###O#",
              "#OO#O#OOOOO#",
              "##O#O#O#O###",
              "#OO#OOO#OGO#",
              "############"),
}
ANTMAZE_GOAL_CELLS = {"umaze": (3, 1), "medium": (6, 6), "large": (7, 9)}
ANTMAZE_RESET_CELL = (1, 1)
ANTMAZE_SCALING = 4.0       # maze_size_scaling in every antmaze-*-v2 registration
GOAL_RADIUS = 0.5           # sparse reward / success radius of both families
MAZE2D_MAX_SPEED = 5.0      # MazeEnv.clip_velocity
ANT_TORQUE = 30.0           # D4RL ant.xml ctrlrange; NormalizedBoxEnv maps [-1, 1] onto it
ANT_FRAME_SKIP = 5


class MazeLayout:
    """A maze grid: walls, the 'G' cell, and the empty-or-goal cells in D4RL's order (empty sorted, then goal)."""

    def __init__(self, name: str, rows: tuple[str, ...]):
        self.name = name
        self.rows = rows
        self.walls = np.array([[c == "#" for c in row] for row in rows])
        self.goal_cell = next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "G")
        empty = [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "O"]
        self.free_cells = np.array(empty + [self.goal_cell], dtype=np.float64)  # MazeEnv.empty_and_goal_locations

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    def random_location(self, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
        """A uniform empty-or-goal cell plus U(-noise, noise) per axis (MazeEnv.reset_model and set_target)."""
        cell = self.free_cells[rng.integers(len(self.free_cells))]
        return cell + rng.uniform(-noise, noise, size=2)


@functools.cache
def get_layout(maze: str) -> MazeLayout:
    if maze not in LAYOUTS:
        raise ConfigError(f"unknown maze '{maze}'", f"use one of: {', '.join(LAYOUTS)}")
    return MazeLayout(maze, LAYOUTS[maze])


# --- Maze2d --------------------------------------------------------------------------------------------------
def point_maze_xml(layout: MazeLayout) -> str:
    """MJCF of D4RL's `point_maze(maze_str)`: physics, contact and actuator settings unchanged."""
    walls = "\n".join(
        f'    <geom name="wall_{r}_{c}" type="box" pos="{r + 1.0} {c + 1.0} 0" size="0.5 0.5 0.2" conaffinity="1"/>'
        for r, c in zip(*np.nonzero(layout.walls), strict=True))
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <worldbody>
    <geom name="ground" type="plane" size="40 40 0.25" pos="0 0 -0.1" contype="1" conaffinity="0"/>
    <body name="particle" pos="1.2 1.2 0">
      <geom name="particle_geom" type="sphere" size="0.1" contype="1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>
"""


@functools.cache
def _point_maze_model(maze: str) -> mujoco.MjModel:
    # One compiled model per maze, shared read-only by every env instance (each has its own MjData).
    return mujoco.MjModel.from_xml_string(point_maze_xml(get_layout(maze)))


class Maze2dEnv(gymnasium.Env):
    """D4RL maze2d point mass; the target is the 'G' cell unless set with `set_target` (data generation)."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (4,), np.float64)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, maze: str = "umaze"):
        self.layout = get_layout(maze)
        self.model = _point_maze_model(maze)
        self.data = mujoco.MjData(self.model)
        self.target = np.array(self.layout.goal_cell, dtype=np.float64)

    def set_target(self, target: np.ndarray) -> None:
        self.target = np.asarray(target, dtype=np.float64)

    def goal_observation(self) -> np.ndarray:
        return np.concatenate([self.target, np.zeros(2)])

    def observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.layout.random_location(self.np_random)
        self.data.qvel[:] = self.np_random.normal(0.0, 0.1, size=2)
        mujoco.mj_forward(self.model, self.data)
        return self.observation(), {"goal": self.goal_observation()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        np.clip(self.data.qvel, -MAZE2D_MAX_SPEED, MAZE2D_MAX_SPEED, out=self.data.qvel)
        mujoco.mj_forward(self.model, self.data)
        self.data.ctrl[:] = np.clip(action, -1.0, 1.0)
        mujoco.mj_step(self.model, self.data)
        obs = self.observation()
        success = bool(np.linalg.norm(obs[:2] - self.target) <= GOAL_RADIUS)
        return obs, float(success), False, False, {"success": success}


# --- AntMaze -------------------------------------------------------------------------------------------------
def ant_maze_xml(layout: MazeLayout) -> str:
    """D4RL's AntMaze MJCF: gymnasium's ant.xml changed to D4RL's ant.xml physics, plus the maze blocks."""
    root = ET.fromstring(importlib.resources.files("gymnasium.envs.mujoco").joinpath("assets/ant.xml").read_text())
    root.find("option").set("timestep", "0.02")
    root.find("default/geom").attrib.update(solref=".02 1", solimp=".8 .8 .01")
    for motor in root.iter("motor"):
        motor.attrib.pop("gear", None)
        motor.set("ctrlrange", f"{-ANT_TORQUE} {ANT_TORQUE}")
    worldbody, s = root.find("worldbody"), ANTMAZE_SCALING
    torso_x, torso_y = ANTMAZE_RESET_CELL[1] * s, ANTMAZE_RESET_CELL[0] * s
    half_height = 0.5 / 2 * s  # maze_env.MazeEnv.__init__ with maze_height 0.5
    for r, c in zip(*np.nonzero(layout.walls), strict=True):
        ET.SubElement(worldbody, "geom", name=f"block_{r}_{c}", type="box", contype="1", conaffinity="1",
                      pos=f"{c * s - torso_x} {r * s - torso_y} {half_height}", size=f"{s / 2} {s / 2} {half_height}")
    return ET.tostring(root, encoding="unicode")


@functools.cache
def _ant_maze_model(maze: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(ant_maze_xml(get_layout(maze)))


class AntMazeEnv(gymnasium.Env):
    """D4RL antmaze-*-v2 evaluation env (eval=True, v2_resets=True, non_zero_reset=False, sparse reward)."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (29,), np.float64)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (8,), np.float32)

    def __init__(self, maze: str = "umaze"):
        self.layout = get_layout(maze)
        self.model = _ant_maze_model(maze)
        self.data = mujoco.MjData(self.model)
        self.goal_cell = ANTMAZE_GOAL_CELLS[maze]
        self.target = self.cell_to_xy(self.goal_cell)

    @staticmethod
    def cell_to_xy(cell: tuple[int, int]) -> np.ndarray:
        """maze_env.MazeEnv._rowcol_to_xy without noise."""
        return np.array([cell[1] - ANTMAZE_RESET_CELL[1], cell[0] - ANTMAZE_RESET_CELL[0]]) * ANTMAZE_SCALING

    def _sample_goal(self) -> np.ndarray:
        # maze_env.MazeEnv.goal_sampler: _rowcol_to_xy(add_random_noise=True) adds U(0, scaling/4), then
        # U(0, 0.5) * scaling/4 more; both one-sided, result clipped at 0.
        s = ANTMAZE_SCALING
        xy = self.cell_to_xy(self.goal_cell) + self.np_random.uniform(0, 0.25 * s, 2)
        return np.maximum(xy + self.np_random.uniform(0, 0.5, 2) * 0.25 * s, 0.0)

    def goal_observation(self) -> np.ndarray:
        qpos = self.model.qpos0.copy()
        qpos[:2] = self.target
        return np.concatenate([qpos[:15], np.zeros(14)])

    def observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.target = self._sample_goal()  # AntMazeEnv.reset with v2_resets: new goal, then the state reset
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.model.qpos0 + self.np_random.uniform(-0.1, 0.1, self.model.nq)  # AntEnv.reset_model
        self.data.qvel[:] = self.np_random.normal(0.0, 0.1, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        return self.observation(), {"goal": self.goal_observation()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # NormalizedBoxEnv.step maps [-1, 1] onto [lb, ub] and clips; same arithmetic, so the same rounding.
        low, high = -ANT_TORQUE, ANT_TORQUE
        self.data.ctrl[:] = np.clip(low + (np.asarray(action) + 1.0) * 0.5 * (high - low), low, high)
        mujoco.mj_step(self.model, self.data, nstep=ANT_FRAME_SKIP)
        success = bool(np.linalg.norm(self.data.qpos[:2] - self.target) <= GOAL_RADIUS)
        return self.observation(), float(success), success, False, {"success": success}


def make_d4rl_env(family: str, maze: str) -> Maze2dEnv | AntMazeEnv:
    """Evaluation env of a D4RL dataset family ('maze2d' or 'antmaze') and maze ('umaze', 'medium', 'large')."""
    if family == "maze2d":
        return Maze2dEnv(maze)
    if family == "antmaze":
        return AntMazeEnv(maze)
    raise ConfigError(f"no D4RL maze env for dataset family '{family}'", "use a maze2d-* or antmaze-* dataset")
