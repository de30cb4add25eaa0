"""Training entry point for every method (Hydra):

    python -m qhyer.train method=qhyer dataset=cube-single-play seed=0 [method.expectile_tau=0.95 ...]
    python -m qhyer.train method=gciql dataset=maze2d-umaze train.steps=20000 eval.episodes_per_task=10

Writes one run folder (`run_dir`, default runs/<method>/<dataset>/seed<seed>); see qhyer/run_folder.py.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from qhyer.errors import BusyError, ConfigError, cli_main
from qhyer.io import LOCK_NAME
from qhyer.methods import METHODS, method_classes
from qhyer.run_folder import RunConfig
from qhyer.trainer import train

store = ConfigStore.instance()
store.store(name="run_schema", node=RunConfig)
for _name in METHODS:
    store.store(group="method", name=_name, node=method_classes(_name)[0])


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    def run() -> int:
        try:
            train(OmegaConf.to_object(cfg))
        except BusyError:
            raise  # the folder is another process's
        except BaseException:
            _remove_hydra_stub(Path(cfg.run_dir))
            raise
        return 0

    cli_main(run)  # bad input and training divergence: one `error:` line, exit 2; Ctrl-C: exit 130


def _remove_hydra_stub(run_dir: Path) -> None:
    """Hydra creates run_dir (and its job log; no .hydra/: `output_subdir: null`) before train() validates the
    config; a run that never wrote its config.yaml leaves no folder behind (a folder with anything else is kept)."""
    if (run_dir / "config.yaml").exists():
        return
    for name in (f"{HydraConfig.get().job.name}.log", LOCK_NAME):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def check_overrides(overrides: list[str]) -> None:
    """Compose the run config from `overrides` as Hydra will, so an unknown key, a value of the wrong type or an
    unknown method is one `error:` line with exit 2 (Hydra reports them in several lines, exit 1). Hydra's own modes
    (`--help`, `--cfg`, `-m`) are left to Hydra."""
    if any(arg.startswith("-") for arg in overrides):
        return
    try:
        with initialize(config_path="conf", version_base="1.3"):
            cfg = OmegaConf.to_object(compose("config", overrides=overrides))
    except (HydraException, OmegaConfBaseException) as err:
        causes = [err, *([err.__cause__] if err.__cause__ else [])]
        problem = "; ".join(str(e).split("\nConfig search path")[0] for e in causes)
        for old, new in ((":\n\t", ": "), ("\n\t", ", "), ("\n\n", "; "), ("\n", " ")):
            problem = problem.replace(old, new)
        raise ConfigError(problem,
                          "`python -m qhyer.train --cfg job` prints every key with its value") from None
    # Hydra creates run_dir (its job log goes there) and reports a read-only or full disk in several lines: create it
    # first, so the OS's error is one line (qhyer.errors.cli_main); `main` removes it again if the run fails early.
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    cli_main(lambda: check_overrides(sys.argv[1:]) or main())
