"""Datasets: registry, local regeneration (OGBench manipulation, D4RL Maze2d), readers and samplers."""

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import DATASETS, DatasetSpec, get_spec

__all__ = ["DATASETS", "DatasetSpec", "EpisodeDataset", "get_spec"]
