"""Goal-conditioned behaviour cloning (OGBench `impls/agents/gcbc.py`): maximise log π(a | s, g) for goals g
drawn uniformly from the rest of the trajectory (hindsight relabelling)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.markov import GCActor, MarkovAgent, MarkovConfig
from qhyer.agent import DataInfo


@dataclass
class GCBCConfig(MarkovConfig):
    name: str = "gcbc"
    # gcbc.py get_config keeps value-goal fields only for GCDataset's sake ("Unused"): GCBC reads no value goal,
    # reward or mask. Their values are OGBench's, so the recorded config matches get_config().
    value_p_curgoal: float = 0.0     # gcbc.py get_config: value_p_curgoal (unused)
    value_p_trajgoal: float = 1.0    # gcbc.py get_config: value_p_trajgoal (unused)
    value_p_randomgoal: float = 0.0  # gcbc.py get_config: value_p_randomgoal (unused)
    value_geom_sample: bool = False  # gcbc.py get_config: value_geom_sample (unused)


class GCBCAgent(MarkovAgent):
    def __init__(self, cfg: GCBCConfig, info: DataInfo):
        super().__init__(cfg, info)
        self.actor = GCActor(info.obs_dim + info.goal_dim, cfg.actor_hidden_dims, info.action_dim)
        self.init_optimizer()

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        actions = batch["actions"]
        mean = self.actor(batch["observations"], batch["actor_goals"])  # (B, A)
        log_prob = GCActor.log_prob(mean, actions)
        return {"loss": -log_prob.mean(), "mse": (mean - actions).pow(2).mean()}
