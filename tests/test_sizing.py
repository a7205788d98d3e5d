"""Settings left at auto follow the data: image size, channels, stem, epochs, loader workers."""

from __future__ import annotations

from pathlib import Path

from conftest import write_digit_images
from fixtures import make_class_folders

from alexnet_lightning import sizing
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.models.alexnet import min_input_size


def test_image_size_is_the_median_short_side_within_the_bounds() -> None:
    assert sizing.image_size([28] * 5, 64, 64).value == 64  # tiny images are enlarged to the network's minimum
    assert "enlarged" in sizing.image_size([28] * 5, 64, 64).why
    assert sizing.image_size([300, 500, 90], 64, 128).value == 128  # photos stop at the maximum
    assert sizing.image_size([70, 90, 101], 64, 128).value == 88  # in between: the median, down to a multiple of 8
    assert sizing.image_size([100], 72, 64).value == 72  # the network's minimum wins over the maximum


def test_channels_stem_epochs_and_workers() -> None:
    assert sizing.channels(["L", "L", "I;16"]).value == 1
    assert sizing.channels(["L", "RGB"]).value == 3
    assert sizing.stem("torchvision", 64).value == "imagenet"
    assert sizing.stem("original", 64).value == "small"  # the 2012 layout needs 67 px for its 11x11/4 stem
    assert sizing.epochs(480, 25000, 5, 60).value == 53
    assert sizing.epochs(54000, 25000, 5, 60).value == 5
    assert sizing.epochs(10, 25000, 5, 60).value == 60
    assert 1 <= sizing.workers().value <= 8


def test_network_minimum_fits_the_network() -> None:
    assert min_input_size("torchvision", "imagenet") == 63 and min_input_size("original", "imagenet") == 67
    assert sizing.network_minimum("torchvision", "auto") == 64
    assert sizing.network_minimum("original", "imagenet") == 72
    assert sizing.network_minimum("torchvision", "small") == 8


def test_data_module_sizes_a_gray_folder_and_a_photo_folder(tmp_path: Path) -> None:
    write_digit_images(tmp_path / "gray", per_class=10)  # 32 px gray PNGs
    gray = ImageDataModule("imagefolder", str(tmp_path / "gray"), image_size="auto", channels="auto")
    gray.load_samples()
    assert (gray.image_size, gray.channels) == (64, 1)
    assert [c.key for c in gray.choices] == ["data.image_size", "model.in_channels"]
    make_class_folders(tmp_path / "photos", n_per_class=10, size=(400, 300))
    photos = ImageDataModule(
        "imagefolder", str(tmp_path / "photos"), image_size="auto", channels="auto", max_image_size=96
    )
    photos.load_samples()
    assert (photos.image_size, photos.channels) == (96, 3)
    explicit = ImageDataModule("imagefolder", str(tmp_path / "photos"), image_size=72, channels=1)
    explicit.load_samples()
    assert (explicit.image_size, explicit.channels, explicit.choices) == (72, 1, [])
