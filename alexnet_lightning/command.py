"""The entry point every Hydra command shares: compose its config, run it, turn user errors into one line.

``main = hydra_command("eval", evaluate)`` is all a command module needs for ``python -m
alexnet_lightning.eval`` and the ``alexnet-eval`` console script alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from alexnet_lightning.distributed import leave_run_files_to_rank_zero
from alexnet_lightning.errors import exit_on_user_error

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # a folder, not a package: console scripts find it too


def hydra_command(config_name: str, run: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A ``main()`` that composes ``conf/<config_name>.yaml`` with the command line and calls ``run`` on it."""

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    @exit_on_user_error
    @functools.wraps(run)  # Hydra names the job (train.log, eval.log) after the unwrapped function's module
    def hydra_main(cfg: DictConfig) -> Any:
        return run(cfg)

    def main() -> Any:
        leave_run_files_to_rank_zero()  # reads the environment torchrun or srun set; changes sys.argv for Hydra
        return hydra_main()

    return main
