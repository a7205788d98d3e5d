"""Exact per-channel normalization statistics over every pixel of the training split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from rich.progress import track
from torch.utils.data import DataLoader, Dataset

from alexnet_lightning.atomic import write_atomic

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def channel_stats(dataset: Dataset, batch_size: int = 256, num_workers: int = 0) -> tuple[list[float], list[float]]:
    """Mean and std over all pixels (not the mean of per-image stds), in float64.

    ``dataset`` yields (float image in [0, 1] at training resolution, label).
    """
    total = sq = None
    count = 0
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for images, _ in track(loader, description="normalization statistics", transient=True):
        x = images.to(torch.float64).transpose(0, 1).flatten(1)
        total = x.sum(1) if total is None else total + x.sum(1)
        sq = (x * x).sum(1) if sq is None else sq + (x * x).sum(1)
        count += x.shape[1]
    assert total is not None and sq is not None, "channel_stats needs at least one image"
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
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
