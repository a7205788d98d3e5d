"""Shared fixtures: compose configs through Hydra's API, with run outputs in a temp folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from alexnet_lightning import config

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``config_name`` with overrides; outputs go to tmp_path, loggers stay quiet."""

    def _make(*overrides: str, config_name: str = "config") -> DictConfig:
        cfg = config.compose_config(config_name, tmp_path, overrides)
        if "callbacks" in cfg:
            cfg.callbacks.progress_bar = None
        return cfg

    yield _make
    GlobalHydra.instance().clear()


def compose_config(config_name: str, output_dir: Path, *overrides: str) -> DictConfig:
    """A command's config (eval, predict, export, serve) as its Hydra main would see it."""
    return config.compose_config(config_name, output_dir, overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(
    module: str, *args: str, cwd: Path = REPO, timeout: int = 600, process: bool = False
) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` as a user would, importing this checkout's package.

    By default the module's ``__main__`` runs in this process (runpy, sys.argv set, Hydra's state
    cleared: tests/readme_commands.py), which saves the 8 s of imports of a new interpreter; stdout
    and stderr then both hold the whole output. ``process=True`` starts a real process: for DDP, kills
    and what only a process shows.
    """
    if not process:
        from readme_commands import run_module_in_process

        status, output = run_module_in_process(module, args, {}, cwd)
        return subprocess.CompletedProcess([module, *args], status, output, output)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A digits model trained for a few seconds, shared by the eval/predict/export/serve tests.

    Returns the checkpoint that ``test`` used and the metrics of that run.
    """
    from alexnet_lightning.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    overrides = [
        "model.head=gap",
        "optimizer.lr=2e-3",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=8",
        "+trainer.limit_val_batches=2",
        "logger=csv",
    ]
    cfg = compose_config("config", out, *overrides)
    with open_dict(cfg):
        cfg.callbacks.progress_bar = None
    metrics = train(cfg)
    return out / "checkpoints" / "best.ckpt", metrics


def write_digit_images(folder: Path, per_class: int = 3, kaggle: bool = False) -> list[Path]:
    """Real digits (scikit-learn's) as PNG files: ``folder/<digit>/<n>.png`` or ``folder/<digit>.<n>.png``."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    paths = []
    for digit in range(10):
        for n, index in enumerate(np.flatnonzero(bunch.target == digit)[-per_class:]):
            image = Image.fromarray(np.clip(bunch.images[index] * 16, 0, 255).astype(np.uint8))
            path = folder / f"{digit}.{n}.png" if kaggle else folder / str(digit) / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.resize((32, 32), Image.NEAREST).save(path)
            paths.append(path)
    return paths
