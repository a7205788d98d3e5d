"""Exact per-channel normalization statistics over every pixel of the training split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from alexnet_lightning.atomic import write_atomic
from alexnet_lightning.data.progress import PassProgress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ChannelSums(Dataset):
    """Per image of ``dataset``: each channel's pixel sum and sum of squares (float64), and its pixel count.

    The loader's workers reduce each image to these six numbers, so every core does the arithmetic and the
    main process only adds small vectors. Summing whole float64 batches in the main process instead grew
    it by about 16 MB a batch (1 GB for 16,000 images): glibc kept the freed batch-sized blocks, scattered
    between the loader's allocations, instead of returning them (benchmarks/RESULTS.md, scale study).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.dataset[i][0].to(torch.float64).flatten(1)
        return torch.stack([image.sum(1), (image * image).sum(1)]), image.shape[1]


def channel_stats(
    dataset: Dataset, batch_size: int = 256, num_workers: int = 0, progress: bool = True
) -> tuple[list[float], list[float]]:
    """Mean and std over all pixels (not the mean of per-image stds), in float64.

    ``dataset`` yields (float image in [0, 1] at training resolution, label).
    """
    sums = torch.zeros(2, 1, dtype=torch.float64)
    count = 0
    loader = DataLoader(_ChannelSums(dataset), batch_size=batch_size, num_workers=num_workers)
    with PassProgress("normalization statistics", len(dataset), progress) as bar:  # type: ignore[arg-type]
        for image_sums, pixels in loader:
            sums = sums + image_sums.sum(0)
            count += int(pixels.sum())
            bar.advance(len(pixels))
        bar.finish(f"normalization statistics of {len(dataset)} images")  # type: ignore[arg-type]
    mean = sums[0] / count
    std = (sums[1] / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def load_cached(path: Path, channels: int | None = None) -> tuple[list[float], list[float]] | None:
    """Statistics saved by an earlier run with the same training files and size, if any.

    A damaged file (not JSON, wrong fields, not one finite value per channel) is None:
    the statistics are computed again and the file replaced.
    """
    try:
        saved = json.loads(path.read_text())
        mean, std = [float(v) for v in saved["mean"]], [float(v) for v in saved["std"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sizes_ok = len(mean) == len(std) > 0 and channels in (None, len(mean))
    if not sizes_ok or not all(math.isfinite(v) for v in mean + std) or min(std) < 0:
        return None
    return mean, std


def save_cached(path: Path, mean: list[float], std: list[float]) -> None:
    write_atomic(path, json.dumps({"mean": mean, "std": std}))  # runs of a sweep share the cache


def fixed_stats(normalize: str, channels: int) -> tuple[list[float], list[float]] | None:
    """Statistics that need no data: ImageNet's, 0.5/0.5, or identity; None means 'compute'."""
    if normalize == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        if channels == 1:
            return [sum(mean) / 3], [sum(std) / 3]
        return mean, std
    if normalize == "half":
        return [0.5] * channels, [0.5] * channels
    if normalize == "none":
        return [0.0] * channels, [1.0] * channels
    return None
