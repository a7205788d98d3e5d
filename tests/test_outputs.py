"""Where commands write: every run under outputs/<command>/DATE/TIME, every sweep under outputs/sweep/."""

from __future__ import annotations

import re

import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

DATE_TIME = r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}"
# config name: task_name (the training config is config.yaml)
COMMANDS = {name: name for name in ("eval", "predict", "export", "serve", "inspect_data", "explain")} | {
    "config": "train"
}


@pytest.mark.parametrize(("config_name", "command"), COMMANDS.items())
def test_each_command_runs_in_its_own_folder_and_sweeps_in_outputs(config_name: str, command: str) -> None:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            hydra = compose(config_name, return_hydra_config=True).hydra
            assert re.fullmatch(f"outputs/{command}/{DATE_TIME}", hydra.run.dir), hydra.run.dir
            assert re.fullmatch(f"outputs/sweep/{DATE_TIME}", hydra.sweep.dir), hydra.sweep.dir
    finally:
        GlobalHydra.instance().clear()
