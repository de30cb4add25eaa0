"""Evaluation environments that no maintained package provides: D4RL Maze2d and AntMaze on `mujoco`."""

from qhyer.envs.maze2d import LAYOUTS, AntMazeEnv, Maze2dEnv, MazeLayout, get_layout, make_d4rl_env

__all__ = ["LAYOUTS", "AntMazeEnv", "Maze2dEnv", "MazeLayout", "get_layout", "make_d4rl_env"]
