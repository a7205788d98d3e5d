from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures import make_class_folders
from PIL import Image

from alexnet_lightning.data import datamodule as dm_module
from alexnet_lightning.data.datamodule import ImageDataModule


def _module(root: Path, cache: Path, size: int = 16) -> ImageDataModule:
    dm = ImageDataModule(
        "imagefolder", str(root), image_size=size, val_fraction=0.25, test_fraction=0.0, cache_dir=cache
    )
    dm.setup()
    return dm


def test_statistics_are_exact_over_training_pixels(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=4, size=(16, 16))  # already at training size
    dm = _module(root, tmp_path / "cache")
    items, _ = dm.split_items("train")
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255 for p in items])
    np.testing.assert_allclose(dm.mean, pixels.mean(axis=(0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(dm.std, pixels.std(axis=(0, 1, 2)), atol=1e-6)
    per_image_std = pixels.std(axis=(1, 2)).mean(axis=0)
    assert not np.allclose(dm.std, per_image_std, atol=1e-3), "not the mean of per-image stds"
    assert len(dm.describe()["mean"]) == 3


def test_statistics_are_cached_and_recomputed_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=4, size=(16, 16))
    first = _module(root, tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "stats").glob("*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("statistics recomputed although nothing changed")

    monkeypatch.setattr(dm_module, "channel_stats", fail)
    assert _module(root, tmp_path / "cache").mean == first.mean
    monkeypatch.undo()
    Image.new("RGB", (16, 16), (255, 255, 255)).save(root / "daisy" / "white.png")
    changed = _module(root, tmp_path / "cache")
    assert changed.mean != first.mean
    assert len(list((tmp_path / "cache" / "stats").glob("*.json"))) == 2
    assert _module(root, tmp_path / "cache", size=8).mean != changed.mean, "another size, other statistics"


@pytest.mark.parametrize(("normalize", "mean"), [("imagenet", [0.485, 0.456, 0.406]), ("half", [0.5] * 3)])
def test_fixed_statistics_need_no_pass(tmp_path: Path, normalize: str, mean: list[float]) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=2)
    dm = ImageDataModule("imagefolder", str(root), normalize=normalize, val_fraction=0.5, cache_dir=tmp_path / "cache")
    dm.setup()
    assert dm.mean == mean and not (tmp_path / "cache" / "stats").exists()
