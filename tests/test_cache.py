"""The decoded-image cache: build once, reuse without decoding, rebuild on change, bad files reported."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from alexnet_lightning.data import cache as cache_module
from alexnet_lightning.data.cache import CachedImages, DeviceBatches, build_cache
from alexnet_lightning.data.decode import decode
from alexnet_lightning.errors import UserError

SIZES = [(40, 60), (64, 48), (30, 30), (50, 90)]  # (height, width)


@pytest.fixture
def folder(tmp_path: Path) -> list[Path]:
    """Four small JPEGs of different sizes, a text file named .jpg and an empty file, in a stable order."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(SIZES):
        path = tmp_path / "images" / f"img{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=95)
        paths.append(path)
    (tmp_path / "images" / "notes.jpg").write_text("not an image")
    (tmp_path / "images" / "empty.jpg").write_bytes(b"")
    return [*paths[:2], tmp_path / "images" / "notes.jpg", *paths[2:], tmp_path / "images" / "empty.jpg"]


def test_build_stores_every_good_image_and_reports_bad_files(folder: list[Path], tmp_path: Path) -> None:
    cache = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    assert cache.decoded == len(folder)
    assert set(cache.bad) == {str(folder[2]), str(folder[5])}
    assert "not a readable image" in cache.bad[str(folder[2])] and "empty file" in cache.bad[str(folder[5])]
    assert cache.rows.tolist() == [0, 1, -1, 3, 4, -1]
    images = cache.images()
    assert images.shape == (6, 3, 32, 32)
    for row, path, (h, w) in zip([0, 1, 3, 4], [folder[i] for i in (0, 1, 3, 4)], SIZES, strict=True):
        assert tuple(cache.sizes[row]) == (h, w)
        expected = TF.resize(decode(path), [32, 32], antialias=True)
        assert torch.equal(torch.from_numpy(np.array(images[row])), expected)
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_second_build_reuses_the_cache_without_decoding(
    folder: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_cache(folder, tmp_path / "cache", size=32, progress=False)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "decode", no_decoding)
    second = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    assert second.decoded == 0 and second.path == first.path and second.bad == first.bad
    assert np.array_equal(second.rows, first.rows) and np.array_equal(second.sizes, first.sizes)
    assert np.array_equal(np.asarray(second.images()), np.asarray(first.images()))


def test_changed_file_or_size_builds_a_new_cache(folder: list[Path], tmp_path: Path) -> None:
    first = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    Image.new("RGB", (20, 10), (255, 0, 0)).save(folder[0])
    os.utime(folder[0], ns=(1, 1))  # a different mtime even on coarse file systems
    second = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    assert second.decoded == len(folder) and second.path != first.path
    assert tuple(second.sizes[0]) == (10, 20)
    assert np.asarray(second.images()[0])[0].min() > 200  # the new red image
    assert build_cache(folder, tmp_path / "cache", size=24, progress=False).decoded == len(folder)


def test_dataset_serves_good_images_with_labels_and_sizes(folder: list[Path], tmp_path: Path) -> None:
    cache = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    labels = [0, 1, 0, 1, 0, 1]
    data = CachedImages(cache, positions=[0, 2, 3, 4], labels=labels)  # position 2 is the bad file
    assert len(data) == 3
    image, label, size = data[2]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert label == 0 and size.tolist() == list(SIZES[3])
    data[0]
    assert pickle.loads(pickle.dumps(data))._fd is None  # workers open the file themselves
    maps = Path("/proc/self/maps")
    if maps.is_file():  # read, not mapped: an epoch over a large cache must not count as this process's memory
        assert str(cache.path) not in maps.read_text()
    images, batch_labels, sizes = next(iter(DataLoader(data, batch_size=3, num_workers=1)))
    assert images.shape == (3, 3, 32, 32) and batch_labels.tolist() == [0, 1, 0] and sizes.shape == (3, 2)


def test_gray_cache_and_in_memory_items(tmp_path: Path) -> None:
    arrays = [torch.full((1, 8, 8), i * 10, dtype=torch.uint8) for i in range(5)]
    cache = build_cache(list(range(5)), tmp_path / "cache", size=16, channels=1, load=arrays.__getitem__)
    assert cache.images().shape == (5, 1, 16, 16)
    assert int(cache.images()[3].max()) == 30 and not cache.bad


def test_decoder_choices_are_checked(folder: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data\.decode='turbo' is unknown"):
        build_cache(folder, tmp_path / "cache", decoder="turbo")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="nvjpeg needs a CUDA GPU"):
            build_cache(folder, tmp_path / "cache", decoder="nvjpeg")


def test_device_batches_cover_the_data_once_per_epoch_in_a_new_order(folder: list[Path], tmp_path: Path) -> None:
    cache = build_cache(folder, tmp_path / "cache", size=32, progress=False)
    data = CachedImages(cache, positions=range(len(folder)), labels=[0, 1, 2, 3, 4, 5])
    batches = DeviceBatches(data, batch_size=3, device=lambda: torch.device("cpu"), seed=1)
    assert len(batches) == 2
    epochs = [[b for b in batches] for _ in range(3)]
    for epoch in epochs:
        labels = torch.cat([y for _, y, _ in epoch])
        assert sorted(labels.tolist()) == [0, 1, 3, 4]  # the bad files' items are not served
        for images, y, sizes in epoch:
            for image, label, size in zip(images, y, sizes, strict=True):
                expected_image, _, expected_size = data[int(np.flatnonzero(data.labels == label)[0])]
                assert torch.equal(image, expected_image) and torch.equal(size, expected_size)
    orders = [torch.cat([y for _, y, _ in epoch]).tolist() for epoch in epochs]
    assert len({tuple(o) for o in orders}) > 1
    assert len(DeviceBatches(data, batch_size=3, drop_last=True)) == 1


def test_nvjpeg_sends_rotated_and_non_jpeg_files_to_pil(tmp_path: Path) -> None:
    upright, rotated, png = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.png"
    Image.new("RGB", (8, 4)).save(upright)
    exif = Image.Exif()
    exif[cache_module.EXIF_ORIENTATION] = 6
    Image.new("RGB", (8, 4)).save(rotated, exif=exif)
    Image.new("RGB", (8, 4)).save(png)
    assert [cache_module._nvjpeg_ready(str(p)) for p in (upright, rotated, png)] == [True, False, False]


def test_nvjpeg_batches_match_pil_and_fall_back_for_bad_files(
    folder: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batching and fallback logic, with torchvision's CPU decoder standing in for nvJPEG."""
    import torchvision.io

    cpu_decode = torchvision.io.decode_jpeg
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torchvision.io, "decode_jpeg", lambda data, mode, device: cpu_decode(data, mode=mode))
    nvjpeg = build_cache(folder, tmp_path / "nv", size=32, decoder="nvjpeg", progress=False)
    pil = build_cache(folder, tmp_path / "pil", size=32, progress=False)
    assert nvjpeg.bad == pil.bad and np.array_equal(nvjpeg.sizes, pil.sizes)
    difference = np.abs(np.asarray(nvjpeg.images(), dtype=int) - np.asarray(pil.images(), dtype=int))
    assert difference.mean() < 2  # libjpeg builds differ by a level here and there
