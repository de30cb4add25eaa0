"""Return-to-go conditioning at evaluation means what a training return-to-go meant (relabelled protocol).

Training (qhyer/data/samplers.py `WindowSampler._relabelled`): RTG_k = 1 iff the relabelled goal row lies after k in
k's episode, and a training episode ends at its goal; 0 only marks goals behind the step or in another episode.
Evaluation therefore asks for the target on every step, also after the goal was reached: Maze2d keeps paying 1 on
every step inside the goal radius, and subtracting it would tell DT/QT/LSDT (and QHyer's 'rtg' variant) from the
first step at the goal on that the goal no longer matters. The source protocols still decrement their D4RL returns
(tests/test_baselines_sequence.py `test_source_conditioning_is_target_minus_reward_scaled_unfloored`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_baselines_sequence import K, make_agent, step_input, walk_dataset  # tests/ is on sys.path
from test_qhyer import make_agent as make_qhyer_agent
from test_qhyer import random_walks, tiny_config
from test_qhyer import step_input as qhyer_step_input

T = 4  # the acting step: the window holds steps 0..4, K = 5
# Episode 0 has not reached its goal; episode 1 reached it at step 1 and stayed inside the radius (Maze2d pays 1 per
# step there); episode 2 reached it on its last step.
REACHED = np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 1]], np.float32)


def record_rtg(agent) -> list[torch.Tensor]:
    """The return-to-go tokens of every forward of the agent's model."""
    seen, forward = [], agent.model.forward
    agent.model.forward = lambda rtg, *args: seen.append(rtg.clone()) or forward(rtg, *args)
    return seen


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
def test_relabelled_conditioning_stays_at_the_target_after_the_goal_is_reached(method):
    ds = walk_dataset()
    agent = make_agent(method, ds).eval()
    assert agent.cfg.protocol == "relabelled"
    seen, policy, actions = record_rtg(agent), agent.policy(), []
    for rewards in (np.zeros_like(REACHED), REACHED):
        policy.reset(3)  # QT samples its candidates from a generator reset here: both calls draw the same noise
        actions.append(policy.act(step_input(ds, T, goal_dim=3, rewards=rewards)))
    not_yet, reached = seen
    torch.testing.assert_close(reached, not_yet, rtol=0, atol=0)   # rewards received change no token
    np.testing.assert_array_equal(actions[1], actions[0])
    if method == "qt":  # per episode, C candidate rows; the first ones are the target returns on every step
        targets = torch.tensor(agent.cfg.candidate_returns)
        rows = reached.view(3, agent.cfg.n_candidates, K)[:, : len(targets)]
        assert torch.equal(rows, targets[None, :, None].expand(3, -1, K))
    else:
        assert agent.cfg.target_return == 1.0 and torch.equal(reached, torch.ones(3, K))


@pytest.mark.parametrize("method", ["dt", "qt", "lsdt"])
def test_training_returns_to_go_are_one_exactly_while_the_goal_is_ahead(method):
    """What the conditioning above asks for: RTG 1 on a training step means the relabelled goal lies after it in its
    episode, whatever the goal kind; steps at or past the goal (or with a goal elsewhere) carry 0."""
    ds = walk_dataset(lengths=(30, 25, 40))
    agent = make_agent(method, ds)
    batch = agent.make_sampler(ds, seed=1).sample(512)
    mask, goal_rows = batch["mask"].numpy(), batch["goal_rows"].numpy()
    window_end = np.array([int(np.flatnonzero((ds.observations == o).all(1))[0])
                           for o in batch["observations"][:, -1].numpy()])
    rows = window_end[:, None] + np.arange(1 - K, 1)                       # dataset row of every window step
    episode = ds.episode_index
    ahead = mask & (episode[np.maximum(rows, 0)] == episode[goal_rows][:, None]) & (rows < goal_rows[:, None])
    np.testing.assert_array_equal(batch["returns_to_go"].numpy(), ahead.astype(np.float32))
    assert ahead.any() and (mask & ~ahead).any()  # the batch holds both meanings


def test_qhyer_rtg_token_stays_at_the_target_after_the_goal_is_reached():
    data = random_walks()
    cfg = tiny_config(conditioning="rtg")
    agent = make_qhyer_agent(cfg, data).eval()
    policy, steps = agent.policy(), cfg.context_len + 2          # past K: the windowed path reads the stored tokens
    actions = {}
    for label, rewards in (("not yet", np.zeros((3, steps))), ("reached", np.ones((3, steps)))):
        policy.reset(3)
        for t in range(steps):
            step = qhyer_step_input(data, t)
            step.history_rewards = rewards[:, :t].astype(np.float32)
            actions[label, t] = policy.act(step)
        assert torch.equal(policy.q_history, torch.full((3, steps), cfg.rtg_target))
    for t in range(steps):
        np.testing.assert_array_equal(actions["reached", t], actions["not yet", t])


# --- the RTG ablation row compares like with like (issue 18 item 6) ---------------------------------------------
def test_the_rtg_rows_control_trains_nf_on_the_rtg_goal_mix_and_is_reported_apart(tmp_path):
    from run_folders import write_run

    from qhyer.algorithm import QHyerConfig
    from qhyer.report import claims, figures, tables
    from qhyer.report.cost import CONFIG_DIR
    from qhyer.runs import study_variants, workflow_config

    rtg_mix = QHyerConfig(conditioning="rtg").for_family("ogbench_play").goal_mix
    for budget in ("quick", "paper"):
        variants = study_variants("ablation", workflow_config(CONFIG_DIR, budget))
        control = QHyerConfig(**variants["attention-nf-rtg-goals"]).for_family("ogbench_play")
        assert control.conditioning == "nf" and control.goal_mix == rtg_mix   # the config's goal_mix is rtg's
        assert QHyerConfig(**variants["attention-nf"]).for_family("ogbench_play").p_random == 0.0

    scores = {"attention-nf": 60.0, "attention-rtg": 20.0, "attention-nf-rtg-goals": 40.0}
    schedule = {"episodes_per_task": 10, "every": 0, "aggregate": "final", "last_k": 1}
    runs = [write_run(tmp_path, study="ablation", variant=variant, dataset=dataset, seed=seed, schedule=schedule,
                      score=score + 10 * seed, method_fields=variants[variant])
            for variant, score in scores.items() for dataset in ("cube-single-play-v0", "cube-single-noisy-v0")
            for seed in range(3)]
    table = tables.ablation(tables.load_episodes(runs), reps=200)
    cells = table.tidy.set_index(["dataset", "random_goals", "conditioning"])["mean"]
    assert cells["cube-single-play-v0", 0.0, "nf"] == pytest.approx(70.0)
    assert cells["cube-single-play-v0", 0.2, "nf"] == pytest.approx(50.0)
    assert len(table.sections[0].display) == 4                     # per dataset: a future-goal row and a 20 % row
    figures.ablation_heatmap(table.tidy)                            # one heatmap row per backbone and goal mix
    doc = claims.load_claims()
    rtg_claim = next(c for c in doc["claims"] if c["id"] == "ablation.order.rtg")
    used = claims.CHECKS["ordering"](rtg_claim, doc, claims.measure(runs)).rows
    assert set(used["variant"]) == {"attention-nf-rtg-goals", "attention-rtg"}
