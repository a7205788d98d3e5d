from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF
from fixtures import accept_fake_cifar10, make_catsdogs_folder, make_class_folders, make_fake_cifar10, make_fake_mnist

from alexnet_lightning.train import train

DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))


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
    assert set(DATASETS) == {"catsdogs", "cifar10", "digits", "fashion_mnist", "flowers", "imagefolder", "mnist"}


@pytest.mark.parametrize("dataset", [d for d in DATASETS if d != "digits"])  # digits: tests/test_train.py
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
