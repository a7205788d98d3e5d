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
    if name.startswith("imagenet"):
        return fixtures.make_imagenet_folder(root, val="flat", n_train=30)  # 2 % of 30: one val image a class
    raise AssertionError(f"no test data for experiment {name}")


def test_every_experiment_is_tested() -> None:
    assert EXPERIMENTS == [
        "catsdogs",
        "catsdogs_best",
        "catsdogs_cpu",
        "cifar10",
        "digits_fast",
        "flowers",
        "imagenet_alexnet",
        "imagenet_alexnet_fast",
        "mnist",
    ]


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
    "imagenet_alexnet": lambda c: (  # torchvision's reference: 8 GPUs x 32 images at lr 0.01, here 1 device x 32
        c.model.norm == "none"
        and c.model.head == "fc"
        and c.model.layout == "torchvision"
        and c.optimizer._target_ == "torch.optim.SGD"
        and c.optimizer.momentum == 0.9
        and c.optimizer.weight_decay == 1e-4
        and c.optimizer.lr == 0.01 * 32 / 256
        and c.scheduler._target_.endswith("StepLR")
        and (c.scheduler.step_size, c.scheduler.gamma) == (30, 0.1)
        and c.trainer.max_epochs == 90
        and c.trainer.precision == "32-true"
        and (c.data.image_size, c.data.crop_fraction, c.data.batch_size) == (224, 0.875, 32)
        and (c.augment, c.normalize) == ("imagenet", "imagenet")
    ),
    "imagenet_alexnet_fast": lambda c: (
        c.model.norm == "batchnorm"
        and c.optimizer.nesterov
        and c.optimizer.lr == 0.1  # 256 images on 1 device
        and c.scheduler._target_.endswith("OneCycleLR")
        and c.label_smoothing == 0.1
        and 30 <= c.trainer.max_epochs <= 40
        and (c.data.image_size, c.data.crop_fraction) == (224, 0.875)
        and c.augment == "imagenet"
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
    if name != "imagenet_alexnet":  # the reference trains in full precision everywhere
        assert recipe.trainer.precision in (("16-mixed", "bf16-mixed") if torch.cuda.is_available() else ("32-true",))
    cfg = make_cfg(
        f"experiment={name}",
        "trainer=debug",
        f"data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "data.batch_size=4",
        *(["data.image_size=64", "model.head=gap"] if name.startswith("imagenet") else []),  # 58 M parameters less
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


def test_imagenet_reference_trains_on_the_ilsvrc_layout_and_keeps_its_eval_view(make_cfg, tmp_path: Path) -> None:
    """Two short epochs of experiment=imagenet_alexnet, shrunk (64 px, the small head, 2 batches, StepLR every
    epoch): the scaled lr reaches the optimizer and decays x0.1 per step, the official validation images are
    the test split, and the checkpoint's eval view is Resize(64 / 0.875) + CenterCrop(64), as in training."""
    import json

    from alexnet_lightning.inference import Predictor

    root = _data("imagenet_alexnet", tmp_path / "data", None)
    cfg = make_cfg(
        "experiment=imagenet_alexnet",
        f"data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "data.batch_size=4",
        "data.image_size=64",
        "model.head=gap",
        "scheduler.step_size=1",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "logger=csv",
    )
    train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01 * 4 / 256 * 0.1**2)
    split = json.loads((tmp_path / "split.json").read_text())
    assert sorted(split["test"]) == [f"val/ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 7)]
    assert all(name.startswith("train/") for name in split["val"]) and len(split["val"]) == 3
    predictor = Predictor.load(tmp_path / "checkpoints" / "best.ckpt", device="cpu")
    assert predictor.class_names == ["tench", "crane (n02012849)", "crane (n03126707)"]
    resize = predictor.transform.transforms[0].transforms[0]
    assert (predictor.crop_fraction, resize.size) == (0.875, [73])


@pytest.mark.parametrize(
    ("overrides", "lr"),
    [
        (["data.batch_size=256"], 0.01),  # the reference's 256 images on one GPU
        (["trainer=ddp_sim", "trainer.devices='0,1'", "data.batch_size=64", "trainer.accumulate_grad_batches=2"], 0.01),
        (["trainer=ddp_sim", "trainer.num_nodes=2", "trainer.devices=[0,1,2,3]", "data.batch_size=32"], 0.01),
    ],
)
def test_imagenet_lr_follows_the_global_batch(make_cfg, overrides: list[str], lr: float) -> None:
    assert make_cfg("experiment=imagenet_alexnet", *overrides).optimizer.lr == pytest.approx(lr)
    assert make_cfg("experiment=imagenet_alexnet_fast", *overrides).optimizer.lr == pytest.approx(lr * 10)
