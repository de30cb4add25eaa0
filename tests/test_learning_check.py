"""Learning check: the verdict against the random policy, the budget sizes it reads, its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from run_folders import write_run

from qhyer import learning_check
from qhyer.errors import ConfigError

DATASET = "maze2d-umaze-v1"
STEPS = 10


def episodes(method: str, returns: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"method": method, "dataset": DATASET, "seed": 0, "task": 1, "episode": range(len(returns)),
                          "success": [int(r > 0) for r in returns], "return": returns, "length": 300, "step": STEPS})
    return frame.assign(normalized_score=learning_check.normalized_score(learning_check.get_spec(DATASET),
                                                                         frame["return"].to_numpy()))


def run_folder(root: Path, method: str, returns: list[float]) -> tuple[Path, float]:
    """A finished run's record (tests/run_folders.py) with these episodes as its evaluation."""
    schedule = {"episodes_per_task": len(returns), "every": 0, "aggregate": "final", "last_k": 1}
    run = write_run(root, method=method, dataset=DATASET, budget="learning_check", steps=STEPS, schedule=schedule)
    bound = pd.read_csv(run / "eval_episodes.csv", dtype={"config_hash": str}).iloc[0]  # the run's checkpoint
    fields = ("task", "config_hash", "episodes_per_task", "max_steps")
    episodes(method, returns).assign(**{c: bound[c] for c in fields}).to_csv(run / "eval_episodes.csv", index=False)
    return run, 12.5


def test_verdict_needs_the_reached_interval_above_random(tmp_path):
    random = episodes("random", [0.0] * 17 + [40.0, 60.0, 5.0])
    runs = {"gcbc": run_folder(tmp_path, "gcbc", [0.0, 2.0, 150.0, 200.0] * 5),    # reaches 75 %: learns
            "dt": run_folder(tmp_path, "dt", [0.0] * 16 + [3.0, 30.0, 50.0, 60.0])}  # reaches 20 %: overlaps
    table = learning_check.check_table(runs, random, DATASET).set_index("method")
    assert list(table.index) == ["random", "gcbc", "dt"]
    assert table.loc["gcbc", "verdict"] == "learns" and table.loc["dt", "verdict"] == "overlaps random"
    assert table.loc["random", "verdict"] == "reference"
    assert table.loc["random", "reached_mean"] == pytest.approx(15.0) and table.loc["gcbc", "reached_mean"] == 75.0
    reached = table["reached_ci_low"], table["reached_ci_high"]
    assert reached[0]["gcbc"] > reached[1]["random"] >= reached[0]["dt"]
    expected_score = episodes("x", [0.0, 2.0, 150.0, 200.0])["normalized_score"].mean()
    assert table.loc["gcbc", "score_mean"] == pytest.approx(expected_score)
    protocol = "10 updates, batch 1024, 20 episodes/task, final checkpoint"
    assert table.loc["gcbc", "budget"].startswith(protocol) and table.loc["gcbc", "wall_time_s"] == 12.5
    assert table.loc["random", "budget"] == "no training; 20 episodes/task"
    text = learning_check.markdown(table.reset_index())
    assert "| gcbc | 75.0 [" in text and "learns" in text and f"- gcbc: {protocol}" in text


def test_sizes_come_from_a_budget(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("train:\n  method_overrides:\n    gcbc: {method.batch_size: 64, method.actor_hidden_dims: "
                       "[32, 32], steps: 5}\n")
    assert learning_check.method_overrides(profile) == {
        "gcbc": ["method.batch_size=64", "method.actor_hidden_dims=[32,32]"]}
    assert learning_check.method_overrides(None) == {}
    with pytest.raises(ConfigError, match="does not exist"):
        learning_check.method_overrides(tmp_path / "missing.yaml")


def test_quick_budget_sizes_are_valid_overrides():
    quick = Path(__file__).resolve().parents[1] / "workflow" / "config" / "budgets" / "quick.yaml"
    overrides = learning_check.method_overrides(quick)
    assert set(overrides) == set(learning_check.METHODS)
    assert all(o.startswith("method.") for entries in overrides.values() for o in entries)


def test_random_reference_plays_the_final_checkpoints_episodes():
    """Each checkpoint step draws its own episodes: the random policy is set against the methods' final checkpoint
    (step --steps) on the same ones."""
    from qhyer.rollout.eval_env import EpisodeSeeds, EvalEnv, episode_seeds

    args = learning_check.build_parser().parse_args(["--steps", "1234", "--episodes", "2", "--max-steps", "2"])
    starts = []
    reset = EvalEnv.reset

    def recording_reset(env, task: int, seeds: EpisodeSeeds):
        starts.append(seeds)
        return reset(env, task, seeds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EvalEnv, "reset", recording_reset)
        frame = learning_check.random_episodes(args)
    assert (frame["step"] == 1234).all()
    assert starts == [episode_seeds(0, 0, episode, 1234) for episode in range(2)]


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--jobs", "0"], ["--max-steps", "-1"]])
def test_bad_arguments_are_one_line_errors(argv):
    with pytest.raises(ConfigError):
        learning_check.main(argv)
