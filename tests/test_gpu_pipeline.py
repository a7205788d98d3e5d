"""data.pipeline=cache inside the template: cache, device augmentation, Lightning fit; on CPU tensors here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures import make_bad_files, make_catsdogs_folder

from alexnet_lightning import sizing
from alexnet_lightning.data.cache import DeviceBatches
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.errors import UserError
from alexnet_lightning.train import train


def _catsdogs(root: Path, cache: Path, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(
        "catsdogs",
        str(root),
        options={"classes": ["cat", "dog"]},
        image_size=32,
        batch_size=4,
        val_fraction=0.25,
        test_fraction=0.0,
        augment="moderate",
        cache_dir=str(cache),
        pipeline="cache",
        cache_size=40,
        **kwargs,
    )
    dm.setup("fit")
    return dm


def test_folder_is_cached_once_and_batches_become_normalized_float_on_the_device(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "data", n_per_class=6)
    dm = _catsdogs(root, tmp_path / "cache")
    assert dm.cache.decoded == 12 and len(list((tmp_path / "cache" / "images").glob("images-*.u8"))) == 1
    images, labels, sizes = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 40, 40)
    assert sizes.tolist()[0] == [40, 48]  # original height, width: crops keep the photo's aspect ratio
    out = dm.on_after_batch_transfer((images, labels, sizes), 0)
    x, y = out
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32) and torch.equal(y, labels)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert -3 < float(x.mean()) < 3, "normalized with the data set's statistics"

    again = _catsdogs(root, tmp_path / "cache")
    assert again.cache.decoded == 0, "the second run reuses the cache"
    (root / "cat.99.jpg").write_bytes((root / "cat.0.jpg").read_bytes())
    assert _catsdogs(root, tmp_path / "cache").cache.decoded == 13, "a new file rebuilds the cache"


def test_bad_files_are_excluded_as_in_the_cpu_path(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "data", n_per_class=6)
    bad = {Path(p).name for p in make_bad_files(root)}
    dm = _catsdogs(root, tmp_path / "cache")
    assert bad and {Path(p).name for p in dm.bad_files} == bad
    seen = sum(len(batch[1]) for loader in (dm.train_dataloader(), dm.val_dataloader()) for batch in loader)
    assert seen == 12, "every good image is used once, no bad one"


def test_unknown_pipeline_and_small_cache_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data\.pipeline='tpu' is unknown: use auto, cache, stream"):
        ImageDataModule("digits", pipeline="tpu")
    with pytest.raises(UserError, match=r"data\.cache_size=64 is below data\.image_size=72: raise it"):
        ImageDataModule("digits", image_size=72, pipeline="cache", cache_size=64)
    assert [ImageDataModule("digits", pipeline=old).pipeline for old in ("gpu", "cpu")] == ["cache", "stream"]


def test_auto_picks_the_cache_for_image_files_where_it_has_room_and_says_so(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "data", n_per_class=6)

    def auto(cache_dir: Path | None) -> ImageDataModule:
        dm = ImageDataModule(
            "catsdogs", str(root), options={"classes": ["cat", "dog"]}, image_size=32, val_fraction=0.25,
            test_fraction=0.0, pipeline="auto", cache_size="auto", cache_dir=str(cache_dir) if cache_dir else None,
        )  # fmt: skip
        assert dm.pipeline == "auto", "decided in setup, once the images are counted"
        dm.setup("fit")
        return dm

    first = auto(tmp_path / "cache")
    assert first.pipeline == "cache" and first.cache is not None and first.cache_size == 64
    assert (
        str(first.choices[-1])
        == "data.pipeline=cache (images decoded once into a 1 MB cache, batches augmented in place)"
    )
    assert str(auto(tmp_path / "cache").choices[-1]) == "data.pipeline=cache (its 1 MB image cache is built)"
    nowhere = auto(None)
    assert nowhere.pipeline == "stream" and str(nowhere.choices[-1]).endswith("(no data.cache_dir for an image cache)")
    full = sizing.pipeline(10 * 2**40, tmp_path / "not" / "made" / "yet")
    assert full.value == "stream" and full.why.startswith("an image cache of 10240.0 GB would take over half of the")
    digits = ImageDataModule(
        "digits", image_size=64, channels=1, normalize="half", pipeline="auto", cache_dir=str(tmp_path)
    )
    digits.setup("fit")
    assert str(digits.choices[-1]) == "data.pipeline=stream (images held in memory: nothing to decode)"


def test_device_batches_are_used_on_a_single_gpu_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm = ImageDataModule("digits", image_size=72, pipeline="cache", cache_size=72, cache_dir=str(tmp_path))
    dm.setup("fit")
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)  # no trainer, or a CPU one

    class Strategy:
        root_device = torch.device("cuda", 0)

    class Trainer:
        strategy, world_size, is_global_zero, global_rank, precision = Strategy(), 1, True, 0, "bf16-mixed"

    dm.trainer = Trainer()
    loader = dm.train_dataloader()
    assert isinstance(loader, DeviceBatches) and len(loader) == -(-len(dm.splits["train"]) // dm.batch_size)
    Trainer.world_size = 2
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader), "DDP shards through the sampler"


@pytest.mark.slow
def test_both_pipelines_learn_digits_equally(make_cfg, tmp_path: Path) -> None:
    """Same seed and epochs: the device path reaches the CPU path's accuracy (within noise)."""
    results = {}
    for pipeline in ("stream", "cache"):
        cfg = make_cfg(
            f"data.pipeline={pipeline}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "trainer.max_epochs=3",
            "logger=csv",
        )
        cfg.paths.output_dir = str(tmp_path / pipeline)
        results[pipeline] = train(cfg)["test/acc"]
    print("test/acc by pipeline:", results)
    assert results["stream"] >= 0.85 and results["cache"] >= 0.85, results
    assert abs(results["stream"] - results["cache"]) <= 0.05, results
