"""Decision Transformer (Chen et al., arXiv 2106.01345) for offline goal-conditioned RL.

Follows kzl/decision-transformer (gym/experiment.py, gym/decision_transformer/models/decision_transformer.py) as
re-implemented in CORL (corl-team/CORL algorithms/offline/dt.py): tokens (R_t, s_t, a_t) plus a learned timestep
embedding, LayerNorm and dropout on the embeddings, pre-LN GPT blocks (GELU as CORL; kzl's HF GPT-2 config uses
ReLU), output LayerNorm, a Linear + Tanh action head read at the state token, and action MSE on the real steps.
Goal-conditioned as LSDT's `--goalconcate`: the state token is [s_t; g].

Returns: the shared WindowSampler gives the sparse goal reward (1 when a step's successor reaches the relabelled goal),
so returns-to-go are 0/1 and the evaluation target is the maximum return 1 (CORL's AntMaze target, whose rewards are
also 0/1), decremented by each reward received (`SequenceAgent.act`).
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.sequence import SequenceAgent, SequenceConfig, gpt_model
from qhyer.agent import DataInfo, warmup_schedule


@dataclass
class DTConfig(SequenceConfig):
    """DT defaults are `SequenceConfig`'s (kzl gym/experiment.py; CORL dt.py `TrainConfig`)."""

    name: str = "dt"
    target_return: float = 1.0  # assumption: sparse 0/1 goal reward ⇒ max return 1 (CORL antmaze target_returns[0])


class DTAgent(SequenceAgent):
    def __init__(self, cfg: DTConfig, info: DataInfo):
        super().__init__(cfg, info)
        self.model = gpt_model(cfg, self.state_dim, info)
        self.init_optimizer(lambda opt: warmup_schedule(opt, cfg.warmup_steps))
