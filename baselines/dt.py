"""Decision Transformer (Chen et al., arXiv 2106.01345) for offline goal-conditioned RL.

Follows kzl/decision-transformer (gym/experiment.py, gym/decision_transformer/models/decision_transformer.py) as
re-implemented in CORL (corl-team/CORL algorithms/offline/dt.py): tokens (R_t, s_t, a_t) plus a learned timestep
embedding, LayerNorm and dropout on the embeddings, pre-LN GPT blocks (GELU as CORL; kzl's HF GPT-2 config uses
ReLU), output LayerNorm, a Linear + Tanh action head read at the state token, and action MSE on the real steps.
Goal-conditioned as LSDT's `--goalconcate`: the state token is [s_t; g].

Returns (protocol 'relabelled'): the shared WindowSampler gives the sparse goal reward (1 when a step's successor
reaches the relabelled goal), so returns-to-go are 0/1 and the evaluation target is the maximum return 1 (CORL's
AntMaze target, whose rewards are also 0/1), decremented by each reward received (`SequenceAgent.act`). Protocol
'source' (D4RL): D4RL's rewards and returns-to-go with the target and scale in `DTConfig.SOURCE_DEFAULTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from baselines.sequence import SequenceAgent, SequenceConfig, gpt_model
from qhyer.agent import DataInfo, warmup_schedule


@dataclass
class DTConfig(SequenceConfig):
    """DT defaults are `SequenceConfig`'s (kzl gym/experiment.py; CORL dt.py `TrainConfig`)."""

    name: str = "dt"
    target_return: float | None = None  # conditioning return at step 0, reward units; None = the protocol's

    # assumption: sparse 0/1 goal reward ⇒ max return 1 (CORL antmaze target_returns[0])
    RELABELLED_DEFAULTS: ClassVar[dict[str, Any]] = {**SequenceConfig.RELABELLED_DEFAULTS, "target_return": 1.0}
    # DT's papers have no Maze2d runs and take no goal: assumption, the values of QT's codebase (a DT fork whose
    # experiment.py sets every D4RL target and scale): maze2d env_targets[0] 300 with scale 10; antmaze 1.0 with
    # scale 1 (also CORL dt.py's antmaze target_returns (1.0,) and reward_scale 1).
    SOURCE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "maze2d": {"target_return": 300.0, "reward_scale": 10.0, "goal_input": "none"},
        "antmaze": {"target_return": 1.0, "reward_scale": 1.0, "goal_input": "none"},
    }


class DTAgent(SequenceAgent):
    def __init__(self, cfg: DTConfig, info: DataInfo):
        super().__init__(cfg, info)
        self.model = gpt_model(cfg, self.state_dim, info)
        self.init_optimizer(lambda opt: warmup_schedule(opt, cfg.warmup_steps))
