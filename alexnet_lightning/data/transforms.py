"""Augmentation presets and eval transforms (torchvision.transforms.v2 on uint8 tensors).

Each pipeline is three swappable steps: geometry/color on uint8, conversion to float,
normalization. The presets follow the two seed recipes this template grew from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from alexnet_lightning.errors import UserError

PRESETS = ("seed000", "seed002", "light", "none")


def augmentation(preset: str, size: int, channels: int) -> v2.Transform:
    """The uint8 -> uint8 training augmentation named by ``augment=``."""
    jitter = v2.ColorJitter(0.2, 0.2, 0.2 if channels == 3 else 0.0)
    if preset == "seed000":
        steps = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), jitter, v2.RandomRotation(15)]
    elif preset == "seed002":
        steps = [
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(10),
            v2.RandomResizedCrop(size, scale=(0.8, 1.0), antialias=True),
            v2.ColorJitter(0.2),
        ]
    elif preset == "light":
        steps = [v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    elif preset == "none":
        steps = [resize_center_crop(size)]
    else:
        raise UserError(f"augment={preset!r} is unknown: use one of {', '.join(PRESETS)}")
    return v2.Compose(steps)


def resize_center_crop(size: int) -> v2.Transform:
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


def to_float() -> v2.Transform:
    return v2.ToDtype(torch.float32, scale=True)


def normalize(mean: Sequence[float], std: Sequence[float]) -> v2.Transform:
    return v2.Normalize(list(mean), list(std))


def train_transform(preset: str, size: int, channels: int, mean, std) -> v2.Transform:
    return v2.Compose([augmentation(preset, size, channels), to_float(), normalize(mean, std)])


def eval_transform(size: int, mean, std) -> v2.Transform:
    return v2.Compose([resize_center_crop(size), to_float(), normalize(mean, std)])
