"""ImageDataModule: samples -> file check -> deterministic split -> statistics -> transforms -> loaders."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from alexnet_lightning import sizing
from alexnet_lightning.atomic import write_atomic
from alexnet_lightning.data import transforms as T
from alexnet_lightning.data.arrays import compact, release_freed_memory, select
from alexnet_lightning.data.cache import (
    DECODERS,
    CachedImages,
    DeviceBatches,
    ImageCache,
    build_cache,
    cache_files,
    cache_key,
)
from alexnet_lightning.data.checks import Scan, format_bad_files, scan_files
from alexnet_lightning.data.decode import decode, to_channels
from alexnet_lightning.data.device_augment import DeviceAugment, DeviceAugmentMixin
from alexnet_lightning.data.fingerprint import fingerprint
from alexnet_lightning.data.lock import exclusive
from alexnet_lightning.data.order import EpochShuffle
from alexnet_lightning.data.presets import preset_name
from alexnet_lightning.data.sources import Samples, find_samples, validate
from alexnet_lightning.data.split import stratified_split, write_split
from alexnet_lightning.data.stats import channel_stats, fixed_stats, load_cached, save_cached
from alexnet_lightning.errors import UserError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
PIPELINES = ("auto", "cache", "stream")
OLD_PIPELINE_NAMES = {"gpu": "cache", "cpu": "stream"}  # from before the CPU could take the cache path too


class ImageDataset(Dataset):
    """Items of one split of compact samples (arrays.py), loaded to uint8, converted to ``channels`` and transformed.

    It keeps numpy arrays of its own split only (positions, items, labels): all that a DataLoader worker
    receives, and nothing whose reading copies the parent's memory into the worker.
    """

    def __init__(self, samples: Samples, positions: Sequence[int], channels: int, transform: Callable) -> None:
        self.positions = np.asarray(positions, dtype=np.int64)
        self.items = samples.items.take(self.positions)
        self.labels = samples.labels.take(self.positions)
        self.load, self.channels, self.transform = samples.load, channels, transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = to_channels(self.load(self.items[i]), self.channels)
        return self.transform(image), int(self.labels[i])


class ImageDataModule(DeviceAugmentMixin, L.LightningDataModule):
    """Checks and splits a source deterministically, computes normalization statistics, serves loaders.

    ``options`` go to the source (e.g. ``test_dir`` for catsdogs, ``download`` for mnist).
    ``cache_dir`` keeps the file check, the statistics and the image cache between runs.

    ``pipeline``: ``stream`` decodes and augments each image in DataLoader workers, every epoch (v2
    transforms); ``cache`` decodes every image once into a ``cache_size`` px uint8 cache and augments
    whole batches on the training device in ``on_after_batch_transfer`` (device_augment.py), a GPU or
    the CPU; ``auto`` picks ``cache`` for image files where it fits on disk, ``stream`` for data held
    in memory (sizing.pipeline). ``decode=nvjpeg`` builds that cache on the GPU.

    ``crop_fraction``: the eval view resizes the short side to ``image_size / crop_fraction`` and
    center-crops ``image_size`` (ImageNet's 256 -> 224 is 0.875); it is stored in the checkpoint.
    """

    def __init__(
        self,
        source: str,
        data_dir: str | None = None,
        options: dict[str, Any] | None = None,
        image_size: int | str = 224,
        channels: int | str = 3,
        batch_size: int = 64,
        num_workers: int | str = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        normalize: str = "dataset",
        augment: str = "light",
        cache_dir: str | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        pipeline: str = "stream",
        decode: str = "pil",
        cache_size: int | str = 256,
        min_image_size: int = 64,
        max_image_size: int = 64,
        crop_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if normalize not in ("dataset", "imagenet", "half", "none"):
            raise UserError(f"normalize={normalize!r} is unknown: use dataset, imagenet, half or none")
        augment = preset_name(augment)
        if channels not in (1, 3) and not sizing.is_auto(channels):
            raise UserError(f"model.in_channels={channels} is not supported: use 1 or 3")
        pipeline = OLD_PIPELINE_NAMES.get(pipeline, pipeline)
        if pipeline not in PIPELINES:
            raise UserError(f"data.pipeline={pipeline!r} is unknown: use {', '.join(PIPELINES)}")
        if decode not in DECODERS:
            raise UserError(f"data.decode={decode!r} is unknown: use one of {', '.join(DECODERS)}")
        if not 0 < crop_fraction <= 1:
            raise UserError(f"data.crop_fraction={crop_fraction} must be in (0, 1]: 0.875 is ImageNet's 256 -> 224")
        self.source, self.data_dir, self.options = source, data_dir, dict(options or {})
        self.image_size, self.channels, self.crop_fraction = image_size, channels, crop_fraction
        self.min_image_size, self.max_image_size = min_image_size, max_image_size
        self.choices: list[sizing.Choice] = []
        """The values chosen for settings left at ``auto`` (sizing.py), with their reasons."""
        if sizing.is_auto(num_workers):
            self.choices.append(sizing.workers())
            num_workers = self.choices[-1].value
        assert not isinstance(num_workers, str)  # config.py allows no string but auto
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.normalize, self.augment = normalize, augment
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._samples: Samples | None = None
        self.splits: dict[str, list[int]] = {}
        self.scan: Scan | None = None
        self.bad_files: dict[str, str] = {}
        self.mean: list[float] = list(mean or [])  # given by a checkpoint (eval): not recomputed
        self.std: list[float] = list(std or [])
        self.pipeline = pipeline
        """``auto`` until setup() picks one for the data (then also in ``choices``)."""
        self.decode, self.cache_size = decode, cache_size
        if self.pipeline == "cache" and not any(map(sizing.is_auto, (cache_size, image_size))):
            self._check_cache_size()
        self.cache: ImageCache | None = None

    @property
    def samples(self) -> Samples:
        """The data set's items and labels, once ``setup`` or ``load_samples`` has found them."""
        if self._samples is None:
            raise RuntimeError("call setup() or load_samples() first")
        return self._samples

    @property
    def classes(self) -> list[str]:
        return self.samples.classes

    def setup(self, stage: str | None = None) -> None:
        if self._samples is None:
            self.load_samples()
            if not (self.mean and self.std):
                self.mean, self.std = self._stats()
            log.info("normalization (%s): mean=%s std=%s", self.normalize, _rounded(self.mean), _rounded(self.std))
        if self.pipeline == "auto":
            self._pick_pipeline()
        if self.pipeline == "cache":
            if self.cache is None:
                self._build_cache()
            self.device_augment = self._device_augment()  # again per trainer: its rank and precision

    def _resolve_cache_size(self) -> None:
        assert not isinstance(self.image_size, str)  # load_samples sized it
        if sizing.is_auto(self.cache_size):  # twice the training size keeps crops sharp, as on the stream path
            self.cache_size = max(self.image_size, min(256, 2 * self.image_size))
        assert not isinstance(self.cache_size, str)
        self._check_cache_size()

    def _pick_pipeline(self) -> None:
        """``auto``: the image cache for image files where it has room (sizing.pipeline), said with the others."""
        self._resolve_cache_size()
        assert not isinstance(self.cache_size, str) and not isinstance(self.channels, str)  # resolved above
        files = isinstance(self.samples.items[0], Path)
        built = (  # the key stats every file: only where the answer can depend on it
            files
            and self.cache_dir is not None
            and all(f.is_file() for f in cache_files(self.cache_dir / "images", self.image_cache_key))
        )
        rows = len(self.samples.items)
        self.choices.append(sizing.pipeline(rows * self.channels * self.cache_size**2, self.cache_dir, built, files))
        self.pipeline = self.choices[-1].value

    @functools.cached_property
    def image_cache_key(self) -> str:
        """The image cache's key (a stat of every file: computed once, after cache_size is resolved)."""
        assert not isinstance(self.cache_size, str) and not isinstance(self.channels, str)  # resolved by then
        return cache_key(self.samples.items, self.cache_size, self.channels, (self.source, str(self.data_dir)))

    def _build_cache(self) -> None:
        """Decode every image once into the cache; bad files it finds are excluded like the file check's."""
        self._resolve_cache_size()
        assert not isinstance(self.cache_size, str) and not isinstance(self.channels, str)  # resolved above
        if self.cache_dir is None:
            raise UserError(
                "data.pipeline=cache keeps its image cache in data.cache_dir: set it (or use data.pipeline=stream)"
            )
        load = self.samples.load
        if isinstance(self.samples.items[0], Path):  # files: decode at reduced scale down to the cache size
            load = functools.partial(decode, channels=self.channels, min_size=self.cache_size)
        self.cache = build_cache(
            self.samples.items,
            self.cache_dir / "images",
            self.cache_size,
            self.channels,
            load=load,
            decoder=self.decode,
            progress=self.trainer is None or self.trainer.is_global_zero,
            key=self.image_cache_key,
        )
        if self.cache.bad:
            log.warning("%d more bad image files excluded by the image cache: %s", len(self.cache.bad), self.cache.bad)
            self.bad_files.update(self.cache.bad)

    def _check_cache_size(self) -> None:
        assert not isinstance(self.cache_size, str) and not isinstance(self.image_size, str)  # both given, or sized
        if self.cache_size < self.image_size:
            raise UserError(f"data.cache_size={self.cache_size} is below data.image_size={self.image_size}: raise it")

    def _device_augment(self) -> DeviceAugment:
        assert not isinstance(self.image_size, str) and not isinstance(self.channels, str)  # load_samples sized them
        rank = self.trainer.global_rank if self.trainer is not None else 0
        bf16 = self.trainer is not None and str(self.trainer.precision).startswith("bf16")
        return DeviceAugment(
            self.augment,
            self.image_size,
            self.mean,
            self.std,
            self.channels,
            seed=self.seed + rank,  # each DDP process augments differently
            dtype=torch.bfloat16 if bf16 else torch.float32,
            crop_fraction=self.crop_fraction,
        )

    def load_samples(self) -> None:
        """Find the samples, exclude bad files, split; everything but the statistics.

        The samples are made compact (arrays.py) as soon as they are listed: numpy arrays, not a Python
        object per image, in this process and in every worker it forks.
        """
        started = time.monotonic()
        samples = compact(find_samples(self.source, self.data_dir, self.options))  # one Path per file no longer
        log.info("listed %d files in %.1f s", len(samples.items), time.monotonic() - started)
        if samples.skipped:
            log.info("ignored files: %s", ", ".join(f"{n} {why}" for why, n in sorted(samples.skipped.items())))
        if len(samples.items) and isinstance(samples.items[0], Path):
            self.scan = scan_files(samples.items, self.cache_dir, progress=rank_zero_only.rank == 0)  # type: ignore[attr-defined]
            self.bad_files = self.scan.bad
            if self.bad_files:
                first = "; ".join(f"{p}: {r}" for p, r in list(self.bad_files.items())[:5])
                log.warning("%d bad image files excluded (all in bad_files.txt): %s", len(self.bad_files), first)
                samples = select(samples, np.flatnonzero(self.scan.good))
        validate(samples, self.source, self.data_dir)
        self._size_to(samples)
        assert not isinstance(self.image_size, str)
        if isinstance(samples.items[0], Path):
            # twice the training size keeps crops sharp; photos far larger than that decode at reduced scale
            samples.load = functools.partial(decode, min_size=2 * self.image_size)
        self._samples = samples
        started = time.monotonic()
        self.splits = self._split(samples)
        if not self.splits["val"]:
            raise UserError(
                f"the validation split is empty ({len(samples.items)} images, data.val_fraction={self.val_fraction}): "
                "raise data.val_fraction or add images"
            )
        counts = ", ".join(f"{name} {len(pos)}" for name, pos in self.splits.items())
        log.info(
            "%s: %d classes, %s images (split in %.1f s)",
            self.source,
            len(samples.classes),
            counts,
            time.monotonic() - started,
        )

    def _size_to(self, samples: Samples) -> None:
        """Resolve ``image_size`` and ``channels`` left at ``auto`` from the scan (files) or the first image."""
        if not (sizing.is_auto(self.image_size) or sizing.is_auto(self.channels)):
            return
        if self.scan is not None:
            good = self.scan.good
            sides, modes = self.scan.sizes[good].min(axis=1).tolist(), self.scan.mode_of(good)
        else:  # an in-memory data set (digits, MNIST, CIFAR pickles): one array, one shape and mode for all
            first = samples.load(samples.items[0])
            n = len(samples.items)
            sides, modes = [min(first.shape[-2:])] * n, ["L" if first.shape[0] == 1 else "RGB"] * n
        if sizing.is_auto(self.image_size):
            self.choices.append(sizing.image_size(sides, self.min_image_size, self.max_image_size))
            self.image_size = self.choices[-1].value
        if sizing.is_auto(self.channels):
            self.choices.append(sizing.channels(modes))
            self.channels = self.choices[-1].value

    def _split(self, samples: Samples) -> dict[str, list[int]]:
        """Splits the data set ships are kept; the missing ones are carved out of its train part."""
        given = samples.splits
        taken = {p for pos in given.values() for p in pos}
        pool = given.get("train") or [p for p in range(len(samples.items)) if p not in taken]
        carved = stratified_split(
            [samples.labels[p] for p in pool],
            [samples.describe(p) for p in pool],
            0.0 if "val" in given else self.val_fraction,
            0.0 if "test" in given else self.test_fraction,
            self.seed,
        )
        splits = {name: [pool[i] for i in carved[name]] for name in SPLITS}  # train: what carving leaves of the pool
        return splits | {name: pos for name, pos in given.items() if name != "train" and pos}

    def _stats(self) -> tuple[list[float], list[float]]:
        assert not isinstance(self.image_size, str) and not isinstance(self.channels, str)  # load_samples sized them
        fixed = fixed_stats(self.normalize, self.channels)
        if fixed:
            return fixed
        train = self.splits["train"]
        key = fingerprint(self.samples.items.take(train), self.source, self.data_dir, self.image_size, self.channels)
        cache = self.cache_dir / "stats" / f"{key}.json" if self.cache_dir else None
        if cache is None:
            return self._compute_stats()
        with exclusive(cache, "normalization statistics"):  # other ranks and sweep runs wait, then reuse
            cached = load_cached(cache, self.channels)
            if cached:
                log.info("normalization statistics reused from %s", cache)
                return cached
            mean, std = self._compute_stats()
            save_cached(cache, mean, std)
        return mean, std

    def _compute_stats(self) -> tuple[list[float], list[float]]:
        assert not isinstance(self.image_size, str)  # load_samples sized it
        eval_steps = v2.Compose([T.resize_center_crop(self.image_size), T.to_float()])
        release_freed_memory(self.num_workers)  # the statistics loader's workers fork from this process
        with torch.random.fork_rng(devices=[]):  # a cache miss must not shift the run's random stream
            return channel_stats(
                self._dataset("train", eval_steps),
                num_workers=self.num_workers,
                progress=rank_zero_only.rank == 0,  # type: ignore[attr-defined]
            )

    def split_items(self, split: str) -> tuple[list[Any], list[int]]:
        """The items (paths or indices, for ``samples.load``) and labels of one split."""
        return [self.samples.items[p] for p in self.splits.get(split, [])], self.split_labels(split).tolist()

    def split_labels(self, split: str) -> np.ndarray:
        """The labels of one split, without building its items (a Path each, 60 MB for 160,000 files)."""
        return self.samples.labels.take(self.splits.get(split, []))

    def write_run_files(self, out_dir: Path) -> None:
        """``split.json`` (item names per split) and ``bad_files.txt`` (path, tab, reason) in the run directory."""
        out_dir = Path(out_dir)
        write_split(
            out_dir / "split.json",
            {name: [self.samples.describe(p) for p in pos] for name, pos in self.splits.items()},
        )
        write_atomic(out_dir / "bad_files.txt", format_bad_files(self.bad_files))

    def _dataset(self, split: str, transform: Callable) -> ImageDataset:
        assert not isinstance(self.channels, str)  # load_samples sized it
        return ImageDataset(self.samples, self.splits.get(split, []), self.channels, transform)

    def _loader(self, split: str, train: bool = False) -> DataLoader | DeviceBatches:
        """pipeline=stream: decoded and transformed images. pipeline=cache: uint8 batches of the cache, held
        whole on a single GPU, else read by a DataLoader (which DDP shards); on_after_batch_transfer augments them."""
        release_freed_memory(self.num_workers)  # the loader's workers fork from this process
        assert not isinstance(self.image_size, str) and not isinstance(self.channels, str)  # load_samples sized them
        data: CachedImages | ImageDataset
        if self.pipeline == "cache":
            assert self.cache is not None  # setup built it
            data = CachedImages(self.cache, self.splits.get(split, []), self.samples.labels)
            trainer = self.trainer
            if trainer is not None and trainer.strategy.root_device.type == "cuda" and trainer.world_size == 1:
                return DeviceBatches(data, self.batch_size, lambda: trainer.strategy.root_device, train, seed=self.seed)
        elif train:
            data = self._dataset(
                split, T.train_transform(self.augment, self.image_size, self.channels, self.mean, self.std)
            )
        else:
            data = self._dataset(split, T.eval_transform(self.image_size, self.mean, self.std, self.crop_fraction))
        return DataLoader(
            data,
            batch_size=self.batch_size,
            **self._order(data, train),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def _order(self, data: CachedImages | ImageDataset, train: bool) -> dict[str, Any]:
        """Training order: EpochShuffle in one process; under DDP Lightning's DistributedSampler, seeded and
        set to the epoch in the same way, replaces a plain shuffle.

        Validation and test under DDP: each image on exactly one process. Lightning's DistributedSampler
        would pad the split to a multiple of the processes with repeated images, counted twice in the
        synced metrics (test/acc over 180 of 179 digits on 2 processes); a process may then run one batch
        fewer, which evaluation allows. A split smaller than the number of processes keeps the padding:
        a process without a batch would hang the others.
        """
        world = self.trainer.world_size if self.trainer is not None else 1
        if train:
            return {"shuffle": True} if world > 1 else {"sampler": EpochShuffle(len(data), self.seed)}
        if self.trainer is not None and 1 < world <= len(data):  # world > 1: there is a trainer
            return {"sampler": UnrepeatedDistributedSampler(data, world, self.trainer.global_rank, shuffle=False)}
        return {"shuffle": False}

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        if not self.splits.get("test"):
            log.warning("no test split (data.test_fraction=0 and no test folder): testing on the validation split")
            return self._loader("val")
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader | DeviceBatches:
        return self.test_dataloader()

    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs to use the model without this data module."""
        return {
            "class_names": list(self.classes),
            "image_size": self.image_size,
            "in_channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_fraction": float(self.crop_fraction),
            "data": self.record(),
        }

    def record(self) -> dict[str, Any]:
        """Where the images are and how they were split, as plain values (folders absolute)."""

        def absolute(key: str, value: Any) -> Any:
            if isinstance(value, Sequence) and not isinstance(value, str):
                return list(value)  # a ListConfig from Hydra becomes a plain list
            return str(Path(value).expanduser().resolve()) if key.endswith("_dir") and value else value

        return {
            "source": self.source,
            "data_dir": absolute("data_dir", self.data_dir),
            "options": {k: absolute(k, v) for k, v in self.options.items()},
            "val_fraction": float(self.val_fraction),
            "test_fraction": float(self.test_fraction),
            "seed": int(self.seed),
        }


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]
