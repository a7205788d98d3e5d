"""ImageDataModule: samples -> deterministic split -> statistics -> transforms -> loaders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from alexnet_lightning.data import transforms as T
from alexnet_lightning.data.sources import Samples, find_samples
from alexnet_lightning.data.split import stratified_split, write_split
from alexnet_lightning.data.stats import channel_stats, fixed_stats
from alexnet_lightning.errors import UserError


class ImageDataset(Dataset):
    """Items of a source, loaded to uint8, converted to ``channels`` and transformed."""

    def __init__(self, samples: Samples, positions: list[int], channels: int, transform: Callable) -> None:
        self.samples = samples
        self.positions = positions
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pos = self.positions[i]
        image = to_channels(self.samples.load(self.samples.items[pos]), self.channels)
        return self.transform(image), self.samples.labels[pos]


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray <-> RGB so that the data always matches ``model.in_channels``."""
    if image.shape[0] == channels:
        return image
    if channels == 1:
        return v2.functional.rgb_to_grayscale(image[:3])
    return image[:1].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]


class ImageDataModule(L.LightningDataModule):
    """Splits a source deterministically, computes normalization statistics, serves loaders."""

    def __init__(
        self,
        source: str,
        data_dir: str | None = None,
        image_size: int = 224,
        channels: int = 3,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        normalize: str = "dataset",
        augment: str = "light",
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        super().__init__()
        if normalize not in ("dataset", "imagenet", "half", "none"):
            raise UserError(f"normalize={normalize!r} is unknown: use dataset, imagenet, half or none")
        if augment not in T.PRESETS:
            raise UserError(f"augment={augment!r} is unknown: use one of {', '.join(T.PRESETS)}")
        if channels not in (1, 3):
            raise UserError(f"model.in_channels={channels} is not supported: use 1 or 3")
        self.source, self.data_dir = source, data_dir
        self.image_size, self.channels = image_size, channels
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.normalize, self.augment = normalize, augment
        self.samples: Samples | None = None
        self.splits: dict[str, list[int]] = {}
        self.mean: list[float] = list(mean or [])  # given by a checkpoint (eval): not recomputed
        self.std: list[float] = list(std or [])

    @property
    def classes(self) -> list[str]:
        return self.samples.classes

    def setup(self, stage: str | None = None) -> None:
        if self.samples is not None:
            return
        self.samples = find_samples(self.source, self.data_dir)
        self.splits = self.samples.splits or stratified_split(
            self.samples.labels, self.val_fraction, self.test_fraction, self.seed
        )
        if self.mean and self.std:
            return
        self.mean, self.std = fixed_stats(self.normalize, self.channels) or channel_stats(
            self._dataset("train", v2.Compose([T.resize_center_crop(self.image_size), T.to_float()])),
            num_workers=self.num_workers,
        )

    def write_split(self, path: Path) -> None:
        """Write the item names of every split (``split.json`` in the run directory)."""
        write_split(path, {name: [self.samples.describe(p) for p in pos] for name, pos in self.splits.items()})

    def _dataset(self, split: str, transform: Callable) -> ImageDataset:
        return ImageDataset(self.samples, self.splits.get(split, []), self.channels, transform)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        if train:
            transform = T.train_transform(self.augment, self.image_size, self.channels, self.mean, self.std)
        else:
            transform = T.eval_transform(self.image_size, self.mean, self.std)
        return DataLoader(
            self._dataset(split, transform),
            batch_size=self.batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test" if self.splits.get("test") else "val")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs to use the model without this data module."""
        return {
            "class_names": list(self.classes),
            "image_size": self.image_size,
            "in_channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }
