"""The shared evaluation layer (qhyer/rollout/): protocol bookkeeping, seeding, scores, sanity policies, CLI.

OGBench protocol: seohongpark/ogbench `impls/utils/evaluation.py`; D4RL scores: `d4rl/offline_env.py`.
OGBench environments take 1-2 s each to build, so the cube-single tests share one small set of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.rollout.__main__ import main as eval_cli
from qhyer.rollout.eval_env import episode_seeds
from qhyer.rollout.policy import Policy, StepInput
from qhyer.rollout.protocol import COLUMNS, evaluate_policy, make_envs, normalized_score, summarize, write_results
from qhyer.rollout.sanity import RandomPolicy, lights_out_presses, make_sanity_policy

CUBE = get_spec("cube-single-play")
UMAZE = get_spec("maze2d-umaze")
CAP = 45


@pytest.fixture(scope="module")
def cube_envs():
    return make_envs(CUBE, 2)


@pytest.fixture(scope="module")
def capped_cube_envs():
    """A step cap the oracle cannot always meet, so episodes end both ways (success and time-out)."""
    return make_envs(CUBE, 3, max_steps=CAP)


@pytest.fixture(scope="module")
def cube_oracle():
    return make_sanity_policy("oracle", CUBE)


def manual_rollout(policy: Policy, spec, env, task: int, episode: int, seed: int, horizon: int) -> tuple:
    """One episode with the plain gymnasium loop, as a reference for the batched bookkeeping."""
    seeds = episode_seeds(seed, task, episode)
    obs, goal = env.reset(task, seeds)
    goal = goal if policy.goal_rep == "full" else goal[list(spec.goal_dims)]
    policy.reset(1)
    history, total, info = [obs], 0.0, {}
    for t in range(horizon):
        observations = np.array(history, np.float32)[None]
        step = StepInput(observations=observations[:, -1], goals=goal[None].astype(np.float32), t=t,
                         history_observations=observations, history_actions=np.zeros((1, t, spec.action_dim)),
                         history_rewards=np.zeros((1, t)), active=np.ones(1, bool),
                         episode_seeds=np.array([seeds.policy], np.uint32))
        obs, reward, terminated, truncated, info = env.env.step(policy.act(step)[0])
        history.append(obs)
        total += reward
        if terminated or truncated:
            break
    return bool(info["success"]), total, t + 1


def test_normalized_score_end_points():
    assert normalized_score(UMAZE, UMAZE.ref_min_score) == pytest.approx(0.0)
    assert normalized_score(UMAZE, UMAZE.ref_max_score) == pytest.approx(100.0)
    antmaze = get_spec("antmaze-medium-play")
    np.testing.assert_allclose(normalized_score(antmaze, np.array([0.0, 1.0])), [0.0, 100.0])  # success x 100
    with pytest.raises(ConfigError, match="no reference scores"):
        normalized_score(CUBE, 1.0)


def test_maze2d_results_are_the_envs_own():
    oracle, horizon = make_sanity_policy("oracle", UMAZE), UMAZE.eval_max_steps
    frame = evaluate_policy(oracle, UMAZE, episodes_per_task=6, seed=5, num_envs=3, method="oracle")
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 6
    assert (frame["task"] == 0).all() and (frame["length"] == horizon).all()  # no termination in Maze2d
    env = make_envs(UMAZE, 1)[0]
    for row in frame.to_dict("records"):
        reference = manual_rollout(oracle, UMAZE, env, row["task"], row["episode"], 5, horizon)
        assert reference == (row["success"], row["return"], row["length"])
    assert frame["success"].mean() > 0.8 and normalized_score(UMAZE, frame["return"].mean()) > 100


@pytest.mark.parametrize("name", ["oracle", "random"])
def test_maze2d_batched_and_one_at_a_time_are_identical(name):
    policy = make_sanity_policy(name, UMAZE)
    batched, single = (evaluate_policy(policy, UMAZE, episodes_per_task=7, seed=2, num_envs=n) for n in (3, 1))
    pd.testing.assert_frame_equal(batched, single)
    other_seed = evaluate_policy(policy, UMAZE, episodes_per_task=7, seed=3, num_envs=3)
    assert not other_seed["return"].equals(batched["return"])


def test_each_checkpoint_draws_fresh_episodes_and_replays_its_own():
    """As OGBench's main.py and QT/LSDT evaluate (their env generators run on between evaluations), each checkpoint
    gets new starts; the same checkpoint gets the same ones, batched or one at a time."""
    starts = []

    class StartRecorder(RandomPolicy):
        goal_rep = "full"

        def act(self, step):
            if step.t == 0:
                starts[-1].append(step.observations.copy())
            return super().act(step)

    frames = {}
    for checkpoint_step, num_envs in ((1000, 4), (1000, 1), (2000, 4)):
        starts.append([])
        frames[checkpoint_step, num_envs] = evaluate_policy(StartRecorder(2), UMAZE, episodes_per_task=4, seed=2,
                                                            num_envs=num_envs, max_steps=3,
                                                            checkpoint_step=checkpoint_step)
    first, again, later = (np.concatenate(s) for s in starts)
    np.testing.assert_array_equal(again, first)
    pd.testing.assert_frame_equal(frames[1000, 1], frames[1000, 4])
    assert (first != later).any(axis=1).all()  # every episode starts elsewhere at the next checkpoint
    # step 0 (untrained policies: sanity checks, the random reference) keeps the seeds of SeedSequence(seed)
    legacy = np.random.SeedSequence(2, spawn_key=(0, 3)).generate_state(3)
    assert tuple(episode_seeds(2, 0, 3)) == tuple(int(x) for x in legacy) != tuple(episode_seeds(2, 0, 3, 1000))
    with pytest.raises(ConfigError, match="checkpoint_step"):
        evaluate_policy(StartRecorder(2), UMAZE, episodes_per_task=1, checkpoint_step=-1)


def test_step_input_histories_and_goals():
    seen = []

    class Recorder(RandomPolicy):
        goal_rep = "full"

        def act(self, step):
            seen.append(step)
            return super().act(step)

    evaluate_policy(Recorder(2), UMAZE, episodes_per_task=2, seed=0, num_envs=2, max_steps=5)
    assert [s.t for s in seen] == list(range(5))
    last = seen[-1]
    assert last.history_observations.shape == (2, 5, 4) and last.history_actions.shape == (2, 4, 2)
    assert last.history_rewards.shape == (2, 4) and np.array_equal(last.observations, last.history_observations[:, -1])
    np.testing.assert_array_equal(last.goals, [[1, 1, 0, 0]] * 2)  # 'full' goal: the agent at rest on 'G'
    with pytest.raises(ConfigError, match="no tasks"):
        evaluate_policy(Recorder(2), UMAZE, episodes_per_task=1, tasks=(3,))


def test_cube_oracle_succeeds(cube_envs, cube_oracle):
    frame = evaluate_policy(cube_oracle, CUBE, episodes_per_task=1, seed=0, num_envs=2, envs=cube_envs)
    assert sorted(frame["task"]) == [1, 2, 3, 4, 5] and frame["success"].all()
    assert (frame["return"] == 1.0).all() and (frame["length"] < CUBE.eval_max_steps).all()  # ends at the goal


def test_cube_results_are_the_envs_own(capped_cube_envs, cube_oracle):
    frame = evaluate_policy(cube_oracle, CUBE, episodes_per_task=1, seed=0, num_envs=3, max_steps=CAP,
                            envs=capped_cube_envs)
    assert 0 < frame["success"].sum() < 5
    for row in frame.to_dict("records"):
        reference = manual_rollout(cube_oracle, CUBE, capped_cube_envs[0], row["task"], row["episode"], 0, CAP)
        assert reference == (row["success"], row["return"], row["length"])


def test_cube_batched_and_one_at_a_time_are_identical(capped_cube_envs, cube_oracle):
    kwargs = {"episodes_per_task": 2, "seed": 3, "tasks": (2, 5), "max_steps": CAP}
    batched = evaluate_policy(cube_oracle, CUBE, num_envs=3, envs=capped_cube_envs, **kwargs)
    single = evaluate_policy(cube_oracle, CUBE, num_envs=1, envs=capped_cube_envs[2:], **kwargs)
    pd.testing.assert_frame_equal(batched, single)


def test_cube_random_policy_is_near_zero(cube_envs):
    frame = evaluate_policy(make_sanity_policy("random", CUBE), CUBE, episodes_per_task=1, num_envs=2, envs=cube_envs)
    assert frame["success"].mean() <= 0.2 and (frame["length"] == CUBE.eval_max_steps).all()  # official limit


def test_antmaze_runs_random_and_has_no_oracle():
    spec = get_spec("antmaze-umaze")
    frame = evaluate_policy(make_sanity_policy("random", spec), spec, episodes_per_task=2, max_steps=20)
    assert len(frame) == 2 and not frame["success"].any() and (frame["length"] == 20).all()
    with pytest.raises(ConfigError, match="AntMaze needs a trained ant policy"):
        make_sanity_policy("oracle", spec)


def test_results_are_written_with_a_summary(tmp_path):
    frame = evaluate_policy(make_sanity_policy("random", UMAZE), UMAZE, episodes_per_task=3, method="random",
                            max_steps=50).assign(step=7)  # the trainer tags each checkpoint's episodes
    episodes_csv, summary_csv = write_results(frame, UMAZE, tmp_path / "eval_episodes.csv")
    pd.testing.assert_frame_equal(pd.read_csv(episodes_csv), frame, check_dtype=False)
    summary = pd.read_csv(summary_csv, dtype={"task": str})
    assert list(summary["task"]) == ["0", "all"] and (summary["step"] == 7).all()
    assert summary["score"].iloc[0] == pytest.approx(normalized_score(UMAZE, frame["return"].mean()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_episodes.csv", "eval_episodes_summary.csv"]
    ogbench_like = frame.assign(dataset=CUBE.name, task=[1, 1, 2], success=[True, False, True])
    overall = summarize(ogbench_like, CUBE).set_index("task")
    assert overall.loc["all", "success"] == pytest.approx(0.75) and overall.loc["all", "score"] == pytest.approx(75)


def toggled_by(presses: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Lights Out: each press flips its button and the 4 neighbours (flat row-major boolean arrays)."""
    flipped = np.zeros(rows * cols, bool)
    for i in np.flatnonzero(presses):
        r, c = divmod(i, cols)
        for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < rows and 0 <= c + dc < cols:
                flipped[(r + dr) * cols + c + dc] ^= True
    return flipped


def test_lights_out_presses_solve_every_reachable_toggle():
    rng = np.random.default_rng(0)
    for rows, cols in ((3, 3), (4, 4), (4, 5)):
        for _ in range(10):
            toggle = toggled_by(rng.random(rows * cols) < 0.5, rows, cols)
            solution = lights_out_presses(rows, cols, toggle)
            np.testing.assert_array_equal(toggled_by(solution, rows, cols), toggle)


def test_sanity_cli_prints_oracle_and_random(capsys, tmp_path):
    assert eval_cli(["sanity", "--dataset", "maze2d-umaze", "--episodes", "4", "--no-progress",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "maze2d-umaze-v1" in out and "oracle" in out and "random" in out
    assert (tmp_path / "sanity_maze2d-umaze-v1_oracle_summary.csv").is_file()
    with pytest.raises(ConfigError, match="unknown dataset"):
        eval_cli(["sanity", "--dataset", "nope"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["puzzle-3x3-play", "cube-double-play"])
def test_manipulation_oracle_on_harder_tasks(name):
    spec = get_spec(name)
    frame = evaluate_policy(make_sanity_policy("oracle", spec), spec, episodes_per_task=2, num_envs=5)
    assert frame["success"].mean() >= 0.6
