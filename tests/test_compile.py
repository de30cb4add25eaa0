"""`train.compile=true` (torch.compile of the agent's loss function, inductor on CPU) trains the same weights as
eager within float32 rounding: inductor fuses and reorders reductions, so bit equality is not expected.
Tolerance: after 4 updates every weight within atol 1e-5 + rtol 1e-4 of eager's, every logged loss within rtol 1e-4.
Dropout is off here: compiled code draws its dropout masks from inductor's own random stream, so with dropout a
compiled run equals an eager one in distribution only. Compiling takes minutes on a busy 2-core CPU, so the
sequence models' cases are `slow`. `train.compile_mode=reduce-overhead` adds CUDA graphs on CUDA only: on the CPU it
must train exactly like the default mode, within the same tolerance of eager (tests/test_precision.py has the CUDA
case)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from test_trainer import final_weights, tiny_config  # tests/ (pytest puts the test folder on sys.path)

from qhyer.run_folder import LoopConfig
from qhyer.trainer import train

ATOL, RTOL = 1e-5, 1e-4


def eager_and_compiled(tmp_path, method: str, compile_mode: str):
    runs = []
    for name, compiled in (("eager", False), ("compiled", True)):
        cfg = tiny_config(tmp_path / name, method, steps=4, **({} if method == "gcbc" else {"dropout": 0.0}))
        loop = dataclasses.replace(cfg.train, compile=compiled, compile_mode=compile_mode if compiled else "default")
        runs.append(train(dataclasses.replace(cfg, train=loop)))
    return runs


@pytest.mark.parametrize(("method", "compile_mode"), [
    ("gcbc", "default"), ("gcbc", "reduce-overhead"),
    *(pytest.param(m, "default", marks=pytest.mark.slow) for m in ("dt", "qhyer"))])
def test_compiled_training_equals_eager(tmp_path, method, compile_mode):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, compiled = eager_and_compiled(tmp_path, method, compile_mode)
    weights, compiled_weights = final_weights(eager), final_weights(compiled)
    assert weights.keys() == compiled_weights.keys()
    for key, value in weights.items():
        if value.is_floating_point():
            torch.testing.assert_close(compiled_weights[key], value, atol=ATOL, rtol=RTOL, msg=key)
        else:
            assert torch.equal(compiled_weights[key], value), key
    metrics = [pd.read_csv(run / "metrics.csv").set_index(["step", "split", "metric"])["value"]
               for run in (eager, compiled)]
    pd.testing.assert_series_equal(metrics[1], metrics[0], rtol=RTOL, atol=ATOL)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the compiled run really went through dynamo


def test_compile_is_off_by_default():
    assert LoopConfig().compile is False and LoopConfig().compile_mode == "default"
