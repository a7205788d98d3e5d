"""Shared fixtures: compose configs through Hydra's API, with run outputs in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``config_name`` with overrides; outputs go to tmp_path, loggers stay quiet."""

    def _make(*overrides: str, config_name: str = "config") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # as in a real run, where the hydra node is not part of the job's config
            cfg.paths.output_dir = str(tmp_path)
            cfg.callbacks.progress_bar = None
        return cfg

    yield _make
    GlobalHydra.instance().clear()


def run_cli(module: str, *args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` as a user would, importing this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
