"""Exact per-channel normalization statistics over every pixel of the training split."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def channel_stats(dataset: Dataset, batch_size: int = 256, num_workers: int = 0) -> tuple[list[float], list[float]]:
    """Mean and std over all pixels (not the mean of per-image stds), in float64.

    ``dataset`` yields (float image in [0, 1] at training resolution, label).
    """
    total = sq = None
    count = 0
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for images, _ in loader:
        x = images.to(torch.float64).transpose(0, 1).flatten(1)
        total = x.sum(1) if total is None else total + x.sum(1)
        sq = (x * x).sum(1) if sq is None else sq + (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


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
