"""Shared evaluation layer: one protocol for every method (OGBench 5-task success, D4RL normalised score)."""

from qhyer.rollout.policy import Policy, StepInput

__all__ = ["Policy", "StepInput"]
