"""Each setting of the baselines' source protocols (`method.protocol=source`) pinned to the line of their authors'
code that sets it: charleshsc/QT (run.sh, experiment.py, decision_transformer/training/ql_trainer.py, D4RL/
create_dataset.py) and WangJinCheng1998/LONG-SHORT-DECISION-TRANSFORMER (README.md, scripts/train.py,
decision_transformer/utils_o.py, Data/Data_with_Goal_download.py). The defaults cite the same lines."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from baselines.lsdt import LSDTConfig
from baselines.qt import QTConfig
from baselines.sequence import warmup_cosine_schedule
from qhyer.data.d4rl import read_d4rl_hdf5, source_episodes
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.data.samplers import TrajectoryWindowSampler
from qhyer.methods import method_classes
from qhyer.report import claims
from qhyer.runs import eval_schedule, train_steps, workflow_config

CONFIG_DIR = Path(__file__).parents[1] / "workflow" / "config"
MAZE2D = ("maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1")
TINY = {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "batch_size": 8}

# --- QT ---------------------------------------------------------------------------------------------------------

# run.sh: dataset → (--eta, --grad_norm, --max_iters); every line has --num_steps_per_iter 1000 --lr_decay.
QT_RUN_SH = {
    "maze2d-umaze-v1": (5.0, 20.0, 100),              # l.136-141
    "maze2d-medium-v1": (5.0, 9.0, 100),              # l.150-155
    "maze2d-large-v1": (4.0, 9.0, 500),               # l.164-169
    "antmaze-umaze-v2": (0.05, 9.0, 500),             # l.178-183
    "antmaze-umaze-diverse-v2": (0.01, 9.0, 500),     # l.185-190
    "antmaze-medium-diverse-v2": (0.01, 9.0, 100),    # l.192-197
    "antmaze-large-diverse-v2": (0.005, 9.0, 100),    # l.199-204
}


@pytest.mark.parametrize("dataset", sorted(QT_RUN_SH))
def test_qt_source_settings_are_run_sh_per_maze(dataset):
    cfg = QTConfig(protocol="source").for_dataset(get_spec(dataset)).for_budget(51_000)
    eta, grad_norm, max_iters = QT_RUN_SH[dataset]
    assert (cfg.eta, cfg.grad_clip) == (eta, grad_norm)
    # T_max = max_iters iterations of 1000 updates, the scheduler stepped once per iteration (ql_trainer.py l.70-72,
    # 112-117); the run's own length does not change it.
    assert (cfg.lr_decay_steps, cfg.lr_decay_every) == (max_iters * 1000, 1000)


def test_per_maze_values_are_the_source_protocols_only():
    """The relabelled protocol keeps its family values and decays over the run's own length, every update."""
    cfg = QTConfig().for_dataset(get_spec("maze2d-large-v1")).for_budget(3000)
    assert (cfg.eta, cfg.grad_clip, cfg.lr_decay_steps, cfg.lr_decay_every) == (5.0, 9.0, 3000, 1)
    assert LSDTConfig().for_dataset(get_spec("maze2d-large-v1")).context_len == 20
    # An explicit value wins over the dataset's default.
    assert QTConfig(protocol="source", eta=1.0).for_dataset(get_spec("maze2d-large-v1")).eta == 1.0


@pytest.mark.parametrize("max_iters, lr_after_51", [(100, 0.4843), (500, 0.9746)])
def test_qt_lr_is_cosine_annealing_stepped_once_per_iteration(max_iters, lr_after_51):
    """QT's schedule is torch's CosineAnnealingLR(T_max=max_iters, eta_min=0) stepped after each 1000-update
    iteration (ql_trainer.py l.70-72, 115-117): update u of the harness uses the LR of iteration ⌊u/1000⌋. Over the
    51 iterations run.sh trains (--early_epoch 50) it ends part-way: 0.48x (max_iters 100) or 0.975x (500)."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    factor = warmup_cosine_schedule(torch.optim.Adam(params, lr=1.0), 0, max_iters * 1000, 1000).lr_lambdas[0]
    reference_opt = torch.optim.Adam(params, lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(reference_opt, T_max=max_iters, eta_min=0.0)
    for iteration in range(51):
        lr = reference_opt.param_groups[0]["lr"]
        for update in (iteration * 1000, iteration * 1000 + 999):
            assert factor(update) == pytest.approx(lr, rel=1e-9, abs=1e-12)
        reference_opt.step()  # no gradients: changes nothing, keeps torch's step order
        reference.step()
    assert factor(51_000) == pytest.approx(reference_opt.param_groups[0]["lr"], rel=1e-9)
    assert factor(51_000) == pytest.approx(lr_after_51, abs=1e-4)


def test_qt_agent_steps_its_source_schedule_per_iteration():
    spec = get_spec("maze2d-medium-v1")
    cfg = QTConfig(protocol="source", n_candidates=8, **TINY).for_dataset(spec).for_budget(51_000)
    ds = maze_dataset()
    _, agent_cls = method_classes("qt")
    agent = agent_cls(cfg, cfg.data_info(spec, cfg.training_data(ds)))
    for key in ("actor", "critic"):
        factor = agent.schedulers[key].lr_lambdas[0]
        assert factor(999) == 1.0 and factor(1000) < 1.0 and factor(1000) == factor(1999)


def test_paper_budget_trains_and_evaluates_qt_as_run_sh():
    """run.sh's `--early_stop --early_epoch E` (experiment.py l.402-403: break after the iteration with index E):
    51 x 1000 updates on Maze2d (E = 50, l.141/155/169), 81 x 1000 on antmaze medium-diverse (E = 80, l.197);
    10 episodes (--num_eval_episodes 10) after every iteration, the best kept (l.384-399). LSDT: 200 x 500
    updates (scripts/train.py l.311-312). The claims file's qt-source protocol asks for the same."""
    config = workflow_config(CONFIG_DIR, "paper")
    for dataset in MAZE2D:
        assert train_steps("source", "qt", dataset, config) == 51 * 1000
        assert train_steps("source", "lsdt", dataset, config) == 200 * 500
        assert eval_schedule(dataset, config, "source", "qt") == {"episodes_per_task": 10, "every": 1000,
                                                                   "aggregate": "best", "last_k": 1}
        assert eval_schedule(dataset, config, "source", "lsdt")["aggregate"] == "best"
    assert train_steps("source", "qt", "antmaze-medium-diverse-v2", config) == 81 * 1000
    protocol = claims.load_claims()["protocols"]["qt-source"]
    assert (protocol["steps"], protocol["episodes_per_task"], protocol["eval_every"], protocol["eval_aggregate"]) == \
        (51 * 1000, 10, 1000, "best")


# --- AntMaze trajectories end at the goal -----------------------------------------------------------------------

def write_antmaze(path: Path) -> Path:
    """Two 12-step collection runs (timeouts at their last rows) of D4RL's antmaze-v2 layout; the ant is in the goal
    region (terminals, reward 1) at rows 4-6 of the first and row 8 of the second."""
    spec, n = get_spec("antmaze-umaze-v2"), 24
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[[4, 5, 6, 20]] = True
    timeouts = np.zeros(n, bool)
    timeouts[[11, 23]] = True
    observations = rng.normal(size=(n, spec.obs_dim)).astype(np.float32)
    observations[:, 0] = np.arange(n)  # the row index, to find rows back in batches
    with h5py.File(path, "w") as f:
        f["observations"] = observations
        f["actions"] = rng.uniform(-1, 1, (n, spec.action_dim)).astype(np.float32)
        f["rewards"] = terminals.astype(np.float32)  # antmaze-v2: the sparse reward is the goal indicator
        f["terminals"], f["timeouts"] = terminals, timeouts
        f["infos/goal"] = np.tile(np.float32([[0.5, 8.0]]), (n, 1))
    return path


def reference_pieces(terminals: np.ndarray, timeouts: np.ndarray) -> list[int]:
    """Trajectory lengths as QT's D4RL/create_dataset.py l.28-45 and LSDT's Data_with_Goal_download.py l.43-68 cut
    them: a trajectory ends at a terminal or a timeout."""
    lengths, current = [], 0
    for done, timeout in zip(terminals, timeouts, strict=True):
        current += 1
        if done or timeout:
            lengths.append(current)
            current = 0
    return lengths


def test_antmaze_source_trajectories_end_at_terminals(tmp_path):
    spec = get_spec("antmaze-umaze-v2")
    path = write_antmaze(tmp_path / "antmaze-umaze-v2.hdf5")
    read = read_d4rl_hdf5(path, spec)
    np.testing.assert_array_equal(read.episode_ends, [12, 24])  # goal-conditioned reading: timeouts only
    with h5py.File(path) as f:
        expected = reference_pieces(f["terminals"][()], f["timeouts"][()])
    assert expected == [5, 1, 1, 5, 9, 3]
    for method in ("dt", "qt", "lsdt"):
        config_cls, _ = method_classes(method)
        split = config_cls(protocol="source").for_dataset(spec).training_data(read)
        np.testing.assert_array_equal(np.diff(split.episode_ends, prepend=0), expected)
        assert config_cls().for_dataset(spec).training_data(read) is read
    split = source_episodes(read)
    assert len(split) == len(read)  # the same rows: the official-size check still holds
    returns = np.add.reduceat(split.rewards, split.episode_starts)
    np.testing.assert_array_equal(returns, [1, 1, 1, 0, 1, 0])  # 0 or 1, as in QT's and LSDT's data


def test_antmaze_source_returns_to_go_say_whether_the_goal_is_ahead(tmp_path):
    spec = get_spec("antmaze-umaze-v2")
    read = read_d4rl_hdf5(write_antmaze(tmp_path / "antmaze-umaze-v2.hdf5"), spec)
    cfg = QTConfig(protocol="source", n_candidates=8, context_len=4, **TINY).for_dataset(spec).for_budget(100)
    _, agent_cls = method_classes("qt")
    split = cfg.training_data(read)
    agent = agent_cls(cfg, cfg.data_info(spec, split))
    batch = agent.make_sampler(split, seed=0).sample(256)
    rows = batch["observations"][..., 0].long().numpy()
    mask = batch["mask"].numpy()
    rtg = batch["returns_to_go"].numpy() * cfg.reward_scale
    # Rows 0-6 and 12-20 end a trajectory at the goal or lie before such an end; rows 7-11 and 21-23 end at a timeout.
    ahead = np.isin(rows, [*range(0, 7), *range(12, 21)])
    np.testing.assert_array_equal(rtg[mask], ahead[mask].astype(np.float32))


def test_lsdt_never_draws_one_row_pieces(tmp_path):
    spec = get_spec("antmaze-umaze-v2")
    read = read_d4rl_hdf5(write_antmaze(tmp_path / "antmaze-umaze-v2.hdf5"), spec)
    cfg = LSDTConfig(protocol="source", context_len=4, conv_dim=8, **TINY).for_dataset(spec)
    sampler = method_classes("lsdt")[1](cfg.for_budget(100), cfg.data_info(spec, cfg.training_data(read))) \
        .make_sampler(cfg.training_data(read), seed=0)
    assert isinstance(sampler, TrajectoryWindowSampler)
    batch = sampler.sample(2000)
    rows = batch["observations"][..., 0].long().numpy()[batch["mask"].numpy()]
    assert set(np.unique(rows)) == set(range(24)) - {5, 6}  # the one-row pieces never (Data_with_Goal_download.py l.58)


# --- LSDT -------------------------------------------------------------------------------------------------------

def maze_dataset(lengths=(3, 8, 1, 12), seed=0) -> EpisodeDataset:
    """Maze2d-shaped data (obs 4: xy, velocity) with D4RL's rewards, recorded goals (one per episode) and terminals;
    observation 0 is the row index."""
    spec, n = get_spec("maze2d-umaze-v1"), sum(lengths)
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, spec.obs_dim)).astype(np.float32)
    obs[:, 0] = np.arange(n)
    episode = np.repeat(np.arange(len(lengths)), lengths)
    goals = rng.uniform(0, 4, (len(lengths), 2)).astype(np.float32)[episode]
    return EpisodeDataset(name=spec.name, observations=obs, actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                          episode_ends=np.cumsum(lengths), goal_dims=np.asarray(spec.goal_dims),
                          rewards=rng.integers(0, 2, n).astype(np.float32),
                          meta={"goal": goals, "terminals": np.zeros(n, bool)})


def test_lsdt_source_context_is_30_on_maze2d_large_only():
    # README.md: `python3 scripts/train.py --env maze2d --dataset large ... --context_len 30`; else --context_len 20
    contexts = {name: LSDTConfig(protocol="source").for_dataset(get_spec(name)).context_len for name in MAZE2D}
    assert contexts == {"maze2d-umaze-v1": 20, "maze2d-medium-v1": 20, "maze2d-large-v1": 30}


def test_lsdt_samples_trajectories_uniformly_with_full_windows():
    """utils_o.py l.177-195: a trajectory uniformly (the DataLoader's items are trajectories), si ~ U{0..len − K},
    K real rows; l.197-223: a trajectory shorter than K whole (timesteps from 0)."""
    ds, k, n = maze_dataset(), 4, 6000
    batch = TrajectoryWindowSampler(ds, k, seed=0, reward_scale=1000.0).sample(n)
    rows, mask = batch["observations"][..., 0].long().numpy(), batch["mask"].numpy()
    timesteps = batch["timesteps"].numpy()
    last = rows[:, -1]
    episode = np.searchsorted(ds.episode_ends, last, side="right")
    assert not (episode == 2).any()  # the one-row trajectory is dropped (Data_with_Goal_download.py l.58)
    # Each kept trajectory (lengths 3, 8, 12) is drawn with probability 1/3: within 4 standard deviations.
    counts = np.bincount(episode, minlength=4)[[0, 1, 3]]
    assert np.all(np.abs(counts - n / 3) < 4 * np.sqrt(n * (1 / 3) * (2 / 3)))
    long = episode != 0
    assert mask[long].all()  # full windows, no padding
    starts = timesteps[long, 0]  # si
    for e, length in ((1, 8), (3, 12)):
        si = starts[episode[long] == e]
        assert set(si) == set(range(length - k + 1))
        p, m = 1 / (length - k + 1), len(si)
        assert np.all(np.abs(np.bincount(si) - m * p) < 4 * np.sqrt(m * p * (1 - p)))
    np.testing.assert_array_equal(timesteps[long], starts[:, None] + np.arange(k))
    short = ~long  # the 3-row trajectory, whole: padding then timesteps 0, 1, 2
    assert (mask[short] == [False, True, True, True]).all() and (timesteps[short, 1:] == [0, 1, 2]).all()


def test_lsdt_standardises_state_and_goal_jointly_over_kept_trajectories():
    """utils_o.py l.156-171: mean and std (+ 1e-6) over every row of the kept trajectories of the state LSDT trains
    on, [s; infos/goal] (Data_with_Goal_download.py l.61); the model's state token is that standardised vector."""
    spec, ds = get_spec("maze2d-umaze-v1"), maze_dataset()
    cfg = LSDTConfig(protocol="source", context_len=4, conv_dim=8, **TINY).for_dataset(spec).for_budget(100)
    info = cfg.data_info(spec, cfg.training_data(ds))
    kept = np.flatnonzero(np.repeat(np.diff(ds.episode_ends, prepend=0) > 1, np.diff(ds.episode_ends, prepend=0)))
    assert len(kept) == len(ds) - 1
    states = np.concatenate([ds.observations[kept], ds.meta["goal"][kept]], axis=1).astype(np.float64)
    mean, std = states.mean(0), states.std(0) + 1e-6
    np.testing.assert_allclose(np.concatenate([info.obs_mean, info.goal_mean]), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([info.obs_std, info.goal_std]), std, rtol=1e-5)
    # The goal's statistics are its own, not those of the observation's xy (what the relabelled protocol uses).
    assert not np.allclose(info.goal_mean, info.obs_mean[list(spec.goal_dims)], rtol=0.1)
    agent = method_classes("lsdt")[1](cfg, info)
    batch = agent.make_sampler(ds, seed=0).sample(16)
    joint = torch.cat([batch["observations"], batch["goals"]], dim=-1)
    expected = (joint - torch.as_tensor(mean, dtype=torch.float32)) / torch.as_tensor(std, dtype=torch.float32)
    torch.testing.assert_close(agent.states(batch), expected, rtol=1e-4, atol=1e-4)


def test_trainer_trains_on_the_source_episodes_and_statistics(tmp_path):
    """The trainer asks the method for its data (`training_data`, `data_info`) and its dataset's values
    (`for_dataset`): the run records the split AntMaze trajectories, LSDT's joint statistics and QT's schedule."""
    from qhyer.run_folder import EvalConfig, LoopConfig, RunConfig, load_run
    from qhyer.runs import read_summary
    from qhyer.trainer import train

    spec = get_spec("antmaze-umaze-v2")
    data = tmp_path / "data"
    data.mkdir()
    write_antmaze(data / spec.train_file)
    loop = LoopConfig(steps=2, log_every=1, val_every=2, val_batches=0, checkpoint_every=2, progress=False, threads=1)
    methods = {"lsdt": LSDTConfig(protocol="source", context_len=4, conv_dim=8, **TINY),
               "qt": QTConfig(protocol="source", context_len=4, n_candidates=8, **TINY)}
    for name, method in methods.items():
        run = train(RunConfig(method=method, dataset=spec.name, data_dir=str(data), run_dir=str(tmp_path / name),
                              train=loop, eval=EvalConfig(enabled=False)))
        summary = read_summary(run)
        assert (summary["protocol"]["dataset_episodes"], summary["protocol"]["dataset_rows"]) == (6, 24)
        _, agent = load_run(run)
        if name == "qt":
            assert (summary["method_config"]["eta"], summary["method_config"]["lr_decay_every"]) == (0.05, 1000)
        else:  # the recorded goal is the same everywhere: its own statistics, not the observations' xy
            np.testing.assert_allclose(agent.goal_mean.numpy(), [0.5, 8.0])
            np.testing.assert_allclose(agent.goal_std.numpy(), [1e-6, 1e-6])
