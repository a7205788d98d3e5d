"""Every recipe in conf/experiment runs with trainer=debug; the mnist recipe really accumulates gradients."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fixtures
import pytest
import torch
from conftest import CONF

from alexnet_lightning.train import train

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _data(name: str, root: Path, monkeypatch) -> Path:
    """A tiny on-disk copy of the data set that experiment ``name`` reads."""
    if name.startswith("catsdogs"):
        return fixtures.make_catsdogs_folder(root, n_per_class=8)
    if name == "flowers":
        return fixtures.make_class_folders(root, ["daisy", "dandelion", "roses", "sunflowers", "tulips"], n_per_class=8)
    if name == "mnist":
        return fixtures.make_fake_mnist(root)
    if name == "cifar10":
        fixtures.accept_fake_cifar10(monkeypatch)
        return fixtures.make_fake_cifar10(root, n_train=200)
    raise AssertionError(f"no test data for experiment {name}")


def test_every_experiment_is_tested() -> None:
    assert EXPERIMENTS == ["catsdogs", "catsdogs_best", "catsdogs_cpu", "cifar10", "digits_fast", "flowers", "mnist"]


def test_digits_fast_runs_with_trainer_debug(make_cfg) -> None:
    cfg = make_cfg("experiment=digits_fast", "trainer=debug")
    assert cfg.scheduler._target_.endswith("OneCycleLR") and cfg.model.head == "gap"
    assert "test/acc" in train(cfg)


RECIPES: dict[str, Callable] = {
    "catsdogs": lambda c: (
        c.model.layout == "original"
        and c.data.image_size == 227
        and c.data.batch_size == 64
        and c.trainer.max_epochs == 30
        and c.optimizer._target_ == "torch.optim.Adam"
        and c.optimizer.lr == 1e-4
        and c.model.dropout == 0.2
        and c.model.init == "kaiming"
        and c.augment == "moderate"
        and c.normalize == "dataset"
        and c.data.val_fraction == 0.2
        and c.callbacks.model_checkpoint.monitor == "val/acc"
    ),
    "catsdogs_best": lambda c: (
        c.model.norm == "batchnorm"
        and c.augment == "strong"
        and c.label_smoothing == 0.1
        and c.trainer.max_epochs == 60
        and "early_stopping" not in c.callbacks
    ),
    "catsdogs_cpu": lambda c: (
        c.model.head == "gap"
        and c.model.norm == "batchnorm"
        and c.data.image_size == 64
        and c.augment == "moderate"
        and c.label_smoothing == 0.1
        and c.scheduler._target_.endswith("OneCycleLR")
    ),
    "flowers": lambda c: (
        c.optimizer._target_ == "torch.optim.AdamW"
        and c.optimizer.lr == 1e-3
        and c.optimizer.weight_decay == 1e-4
        and c.scheduler.step_size == 20
        and c.scheduler.gamma == 0.1
        and c.normalize == "imagenet"
        and c.augment == "strong"
        and c.data.batch_size == 64
    ),
    "mnist": lambda c: (
        c.model.in_channels == 1
        and c.model.stem == "small"
        and c.normalize == "half"
        and c.optimizer._target_ == "torch.optim.AdamW"
        and c.trainer.accumulate_grad_batches > 1
    ),
    "cifar10": lambda c: (
        c.model.stem == "small"
        and c.optimizer._target_ == "torch.optim.SGD"
        and c.optimizer.momentum == 0.9
        and c.optimizer.lr == 0.01
        and c.optimizer.weight_decay > 0
    ),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_dataset_experiment_runs_with_trainer_debug(make_cfg, tmp_path: Path, monkeypatch, name: str) -> None:
    root = _data(name, tmp_path / "data", monkeypatch)
    recipe = make_cfg(f"experiment={name}", f"data_dir={root}")
    assert RECIPES[name](recipe), f"experiment={name} no longer sets its recipe"
    assert recipe.trainer.precision in (("16-mixed", "bf16-mixed") if torch.cuda.is_available() else ("32-true",))
    cfg = make_cfg(
        f"experiment={name}",
        "trainer=debug",
        f"data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "data.batch_size=4",
    )
    assert "test/acc" in train(cfg)


def _optimizer_steps(tmp_path: Path) -> int:
    return torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


def test_gradient_accumulation_makes_one_optimizer_step_per_k_batches(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "model.head=gap",
        "data.image_size=64",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=8",
        "+trainer.limit_val_batches=1",
        "trainer.accumulate_grad_batches=4",
        "test=false",
        "logger=csv",
    )
    train(cfg)
    assert _optimizer_steps(tmp_path) == 8 // 4


def test_mnist_experiment_accumulates(make_cfg, tmp_path: Path, monkeypatch) -> None:
    root = _data("mnist", tmp_path / "data", monkeypatch)
    cfg = make_cfg(
        "experiment=mnist",
        f"data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=8",
        "+trainer.limit_val_batches=1",
        "test=false",
        "logger=csv",
    )
    train(cfg)
    assert _optimizer_steps(tmp_path) == 8 // cfg.trainer.accumulate_grad_batches
