"""Where samples come from: each source returns items, labels, class names and a loader.

An item is whatever identifies one image (a path, an index into an array); ``load`` turns
it into a uint8 CxHxW tensor. Decoding stays separate from augmentation and normalization
so that a device-side path can replace the later steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alexnet_lightning.errors import UserError


@dataclass
class Samples:
    items: list[Any]
    labels: list[int]
    classes: list[str]
    load: Callable[[Any], torch.Tensor]
    splits: dict[str, list[int]] = field(default_factory=dict)
    """Positions into ``items`` per split when the data set ships its own splits."""

    def describe(self, i: int) -> str:
        """A stable, human-readable name of item ``i`` for split files and reports."""
        return str(self.items[i])


def digits(data_dir: str | None = None) -> Samples:
    """scikit-learn's 1,797 bundled 8x8 handwritten digits, as 1-channel uint8 images."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8)).unsqueeze(1)
    samples = Samples(
        items=list(range(len(images))),
        labels=[int(y) for y in bunch.target],
        classes=[str(c) for c in bunch.target_names],
        load=lambda i: images[i],
    )
    samples.describe = lambda i: f"digits:{i}"  # type: ignore[method-assign]
    return samples


SOURCES: dict[str, Callable[..., Samples]] = {"digits": digits}


def find_samples(source: str, data_dir: str | None) -> Samples:
    """Look the source up by name and check that it yields a usable data set."""
    if source not in SOURCES:
        raise UserError(f"unknown data source {source!r}: use one of {', '.join(SOURCES)}")
    samples = SOURCES[source](data_dir)
    if not samples.items:
        raise UserError(f"data set {source!r} in {data_dir} is empty: no images found")
    present = set(samples.labels)
    if len(present) < 2:
        raise UserError(
            f"data set {source!r} in {data_dir} has only one class ({samples.classes}): a classifier needs at least two"
        )
    empty = [c for i, c in enumerate(samples.classes) if i not in present]
    if empty:
        raise UserError(f"class folders without images: {', '.join(empty)}; add images or remove them")
    return samples
