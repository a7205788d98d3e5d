from __future__ import annotations

from pathlib import Path
from unittest.mock import ANY

import pytest
from conftest import CONF
from fixtures import accept_fake_cifar10, make_catsdogs_folder, make_class_folders, make_fake_cifar10, make_fake_mnist
from omegaconf import OmegaConf

from alexnet_lightning import config
from alexnet_lightning.train import train

DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))

# What each preset composed to when every preset still spelled out all its keys (before
# conf/dataset/base/datamodule.yaml); the base file must not change any of it.
SHARED = {
    "_target_": "alexnet_lightning.data.datamodule.ImageDataModule",
    "data_dir": None,
    "image_size": "auto",
    "max_image_size": 64,
    "crop_fraction": 1.0,
    "channels": "auto",
    "val_fraction": 0.1,
    "seed": 0,
    "normalize": "dataset",
    "pipeline": "auto",
    "decode": "pil",
    "cache_size": "auto",
}
TORCHVISION = {"options": {"download": False}, "batch_size": 128, "num_workers": "auto", "test_fraction": 0.0}
FOLDER = {"options": {"test_dir": None}, "batch_size": 64, "num_workers": "auto", "test_fraction": 0.1}
PRESETS = {
    "catsdogs": {
        "source": "catsdogs",
        "augment": "light",
        **FOLDER,
        "options": {"classes": ["cat", "dog"], "test_dir": None},
    },
    "cifar10": {"source": "cifar10", "augment": "light", **TORCHVISION},
    "digits": {"source": "digits", "augment": "none", "batch_size": 32, "num_workers": 0, "test_fraction": 0.1},
    "fashion_mnist": {"source": "fashion_mnist", "augment": "none", **TORCHVISION},
    "flowers": {"source": "imagefolder", "augment": "strong", **FOLDER},  # seed000 before the presets were named
    "imagefolder": {"source": "imagefolder", "augment": "light", **FOLDER},
    "imagenet": {
        "source": "imagenet",
        "augment": "light",
        "batch_size": 64,
        "num_workers": "auto",
        "val_fraction": 0.02,
        "test_fraction": 0.0,
        "pipeline": "stream",
        "normalize": "imagenet",
    },
    "mnist": {"source": "mnist", "augment": "none", **TORCHVISION},
}


def _data_dir(dataset: str, root: Path) -> str | None:
    if dataset == "catsdogs":
        return str(make_catsdogs_folder(root, n_per_class=6))
    if dataset in ("imagefolder", "flowers"):
        return str(make_class_folders(root, ("daisy", "dandelion", "roses"), n_per_class=10))
    if dataset in ("mnist", "fashion_mnist"):
        return str(make_fake_mnist(root, folder="MNIST" if dataset == "mnist" else "FashionMNIST"))
    if dataset == "cifar10":
        return str(make_fake_cifar10(root, n_train=100))
    return None


def test_every_data_set_has_a_test() -> None:
    assert set(DATASETS) == set(PRESETS)


def _data(config_name: str, tmp_path: Path, *overrides: str) -> tuple[dict, dict]:
    extra = ["ckpt_path=model.ckpt"] if config_name == "eval" else []
    cfg = config.compose_config(config_name, tmp_path, [*extra, *overrides])
    top = {k: cfg[k] for k in ("data_dir", "normalize", "augment")}
    return OmegaConf.to_container(cfg.data, resolve=True), top | {"cache_dir": cfg.paths.cache_dir}


@pytest.mark.parametrize("config_name", ["config", "eval", "inspect_data"])
def test_every_preset_composes_to_its_values_in_every_command(tmp_path: Path, config_name: str) -> None:
    for dataset, own in PRESETS.items():
        data, top = _data(config_name, tmp_path, f"dataset={dataset}")
        normalize = own.get("normalize", "dataset")
        assert top == {"data_dir": None, "normalize": normalize, "augment": own["augment"], "cache_dir": ANY}
        seed = {"seed": None} if config_name == "eval" else {}  # eval: the training run's seed, from the checkpoint
        assert data == SHARED | own | {"cache_dir": top["cache_dir"]} | seed, dataset


def test_only_the_base_file_names_the_data_module_and_hydra_does_not_offer_it() -> None:
    naming = [p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml") if "ImageDataModule" in p.read_text()]
    assert naming == ["dataset/base/datamodule.yaml"]
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        options = GlobalHydra.instance().config_loader().get_group_options("dataset")
    assert sorted(options) == DATASETS


def test_a_users_preset_is_one_small_file_over_the_base(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "pets.yaml").write_text(
        "# @package _global_\ndefaults:\n  - base/datamodule\n  - _self_\n\n"
        "augment: moderate\ndata:\n  source: imagefolder\n  batch_size: 16\n"
    )
    data, top = _data("config", tmp_path, f"hydra.searchpath=[file://{tmp_path}]", "dataset=pets", "data_dir=/x")
    assert data == SHARED | {"source": "imagefolder", "batch_size": 16, "num_workers": "auto", "test_fraction": 0.1,
                             "augment": "moderate", "data_dir": "/x", "cache_dir": top["cache_dir"]}  # fmt: skip


# digits: tests/test_train.py; imagenet: tests/test_experiments.py runs its two recipes
@pytest.mark.parametrize("dataset", [d for d in DATASETS if d not in ("digits", "imagenet")])
def test_debug_run_on_every_data_set(make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str) -> None:
    accept_fake_cifar10(monkeypatch)
    cfg = make_cfg(
        f"dataset={dataset}",
        f"data_dir={_data_dir(dataset, tmp_path / 'data')}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "trainer=debug",
        "model.head=gap",
        "data.num_workers=0",
        "data.batch_size=4",
        *(["data.image_size=64"] if dataset in ("catsdogs", "imagefolder", "flowers") else []),
    )
    metrics = train(cfg)
    assert "test/acc" in metrics
    assert (tmp_path / "split.json").is_file() and (tmp_path / "bad_files.txt").read_text() == ""


def test_cifar10_image_folder_form_and_catsdogs_holdout(make_cfg, tmp_path: Path) -> None:
    for split in ("train", "test"):
        make_class_folders(tmp_path / "cifar" / split, ("airplane", "cat"), n_per_class=10, size=(32, 32))
    cfg = make_cfg(
        "dataset=cifar10", f"data_dir={tmp_path / 'cifar'}", f"paths.cache_dir={tmp_path / 'c'}", "trainer=debug"
    )
    assert "test/acc" in train(cfg)
    train_dir = make_catsdogs_folder(tmp_path / "kaggle" / "train", n_per_class=10)
    holdout = make_catsdogs_folder(tmp_path / "kaggle" / "holdout", n_per_class=2)
    cfg = make_cfg(
        "dataset=catsdogs",
        f"data_dir={train_dir}",
        f"data.options.test_dir={holdout}",
        f"paths.cache_dir={tmp_path / 'c'}",
        "trainer=debug",
        "model.head=gap",
        "data.image_size=64",
        "data.num_workers=0",
    )
    train(cfg)
    import json

    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["test"]) == 4 and all(name.startswith(str(holdout)) for name in split["test"])
