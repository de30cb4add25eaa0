"""QHyer reproduction harness: data, evaluation, QHyer and baselines for offline goal-conditioned RL."""

__version__ = "0.1.0"
