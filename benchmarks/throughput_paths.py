"""The data paths throughput.py measures: the seed posts' PIL loader and the template's own data module."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as tv1

from alexnet_lightning import sizing
from alexnet_lightning.config import compose_config
from alexnet_lightning.data.cache import CachedImages, DeviceBatches
from alexnet_lightning.data.datamodule import ImageDataModule

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet statistics: every row normalizes alike
CLASSES = ["cat", "dog"]


def kaggle_files(data_dir: Path, per_class: int) -> tuple[list[Path], list[int]]:
    """cat.0-N and dog.0-N of the Kaggle flat layout (the issue's reference subset: 1,000 each)."""
    paths = [data_dir / f"{name}.{i}.jpg" for name in CLASSES for i in range(per_class)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"error: {len(missing)} files missing, e.g. {missing[0]}: point --data-dir at the Kaggle train folder")
    return paths, [c for c in range(len(CLASSES)) for _ in range(per_class)]


class PILFiles(Dataset):
    """What the seed posts use: ImageFolder's PIL loading over a list of (path, label)."""

    def __init__(self, paths: list[Path], labels: list[int], transform) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.labels[i]


def seed_loader(args, device, paths, labels) -> DataLoader:
    transform = tv1.Compose(
        [
            tv1.RandomHorizontalFlip(),
            tv1.RandomRotation(10),
            tv1.RandomResizedCrop(args.image_size, scale=(0.8, 1.0)),
            tv1.ColorJitter(0.2),
            tv1.ToTensor(),
            tv1.Normalize(MEAN, STD),
        ]
    )
    return DataLoader(
        PILFiles(paths, labels, transform),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )


def subset_folder(paths: list[Path], root: Path) -> Path:
    """The subset as a Kaggle-style folder of its own (symlinks), so the template's data module reads exactly it."""
    root.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (root / path.name).symlink_to(path.resolve())
    return root


def template_datamodule(args, folder: Path, cache_dir: Path, pipeline: str, decoder: str = "pil") -> ImageDataModule:
    """The template's own data module, as ``dataset=catsdogs data.pipeline=...`` builds it (almost all for training)."""
    return ImageDataModule(
        "catsdogs",
        str(folder),
        options={"classes": CLASSES},
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.workers if pipeline == "stream" else min(args.workers, 4),
        val_fraction=0.05,
        test_fraction=0.0,
        seed=args.seed,
        normalize="imagenet",
        augment=args.augment,
        cache_dir=str(cache_dir),
        pipeline=pipeline,
        decode=decoder,
        cache_size=args.cache_size,
    )


def prepared(datamodule: ImageDataModule, what: str) -> ImageDataModule:
    """Run setup (file check, and for pipeline=cache the cache build) outside the timed steps; report its time."""
    start = time.perf_counter()
    datamodule.setup("fit")
    print(f"{what}: {time.perf_counter() - start:.1f} s")
    return datamodule


def device_batches(datamodule: ImageDataModule, args, device: torch.device) -> DeviceBatches:
    """The training split of the cache held on the device, as the template serves it on one GPU."""
    data = CachedImages(datamodule.cache, datamodule.splits["train"], datamodule.samples.labels)
    return DeviceBatches(data, args.batch_size, device, drop_last=True, seed=args.seed)


def default_config(args, folder: Path, work: Path) -> DictConfig:
    """``python -m alexnet_lightning.train dataset=catsdogs data_dir=FOLDER`` with the benchmark's size,
    batch and augmentation, everything else (``data.pipeline=auto``, workers, trainer, callbacks,
    logger) left at the template's defaults."""
    overrides = [
        "dataset=catsdogs",
        f"data_dir={folder}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        "data.val_fraction=0.05",
        "data.test_fraction=0.0",
        "normalize=imagenet",
        f"augment={args.augment}",
        f"paths.cache_dir={work / 'default_cache'}",
        f"seed={args.seed}",
    ]
    return compose_config("config", work / "default_run", overrides)


def default_datamodule(cfg: DictConfig) -> ImageDataModule:
    """The data module as the training command builds it from ``cfg`` (not yet set up)."""
    smallest = sizing.network_minimum(cfg.model.layout, cfg.model.stem)
    return hydra.utils.instantiate(cfg.data, min_image_size=smallest)
