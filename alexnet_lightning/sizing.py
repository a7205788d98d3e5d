"""Settings a user left at ``auto``, sized to the data: image size, input channels, stem, epochs, workers, data path.

A user who points the template at a folder and sets nothing else gets a run fitted to that folder
(benchmarks/RESULTS.md, "Defaults study", holds the evidence behind each rule). Every choice comes
with the reason and the override, printed once at the start of the run; an explicit value always wins.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from alexnet_lightning.models.alexnet import min_input_size

AUTO = "auto"
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
T = TypeVar("T", int, str)


@dataclass(frozen=True)
class Choice(Generic[T]):
    """One value chosen for the user: what, why, and the override that replaces it."""

    key: str
    value: T
    why: str

    def __str__(self) -> str:
        return f"{self.key}={self.value} ({self.why})"


def is_auto(value: object) -> bool:
    return isinstance(value, str) and value.lower() == AUTO


def image_size(short_sides: Sequence[int], low: int, high: int) -> Choice[int]:
    """The images' median short side, within [low, high] and rounded down to a multiple of 8.

    Small images are enlarged to what the network can take (the 11x11/4 stem at 64 px is ~15x cheaper
    than the 3x3/1 stem at 32 px); large ones are shrunk to ``high``, where a CPU run stays minutes.
    ``low``, the network's own minimum, wins over ``high``.
    """
    median = int(statistics.median(short_sides))
    size = max(low, min(high, median) // 8 * 8)
    if median < low:
        why = f"median short side {median} px, enlarged to the network's minimum {low}"
    elif median > size:
        why = f"median short side {median} px, reduced to data.max_image_size={high}"
    else:
        why = f"median short side {median} px"
    return Choice("data.image_size", size, why)


def channels(modes: Sequence[str]) -> Choice[int]:
    """1 when every image is gray, else 3."""
    gray = sum(mode in GRAY_MODES for mode in modes)
    if gray == len(modes):
        return Choice("model.in_channels", 1, f"all {len(modes)} images are gray")
    return Choice("model.in_channels", 3, f"{len(modes) - gray} of {len(modes)} images in colour")


def stem(layout: str, size: int) -> Choice[str]:
    """The ImageNet stem (11x11/4) where the image is large enough for it, else the small one (3x3/1)."""
    needed = min_input_size(layout, "imagenet")
    if size >= needed:
        return Choice("model.stem", "imagenet", f"{size} px >= {needed}")
    return Choice("model.stem", "small", f"{size} px is below the 11x11/4 stem's {needed}")


def epochs(train_images: int, images_to_see: int, low: int, high: int) -> Choice[int]:
    """Enough epochs to show the network about ``images_to_see`` training images, within [low, high]."""
    n = max(low, min(high, math.ceil(images_to_see / max(1, train_images))))
    return Choice("trainer.max_epochs", n, f"{train_images} training images, about {images_to_see} to see")


def cores() -> int:
    """The cores this process may use (a SLURM job's, not the node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def workers() -> Choice[int]:
    """One loader process per core this process may use (at most 8), so DataLoader never warns of too many."""
    return Choice("data.num_workers", min(8, cores()), f"{cores()} cores")


def pipeline(cache_bytes: int, cache_dir: Path | None, built: bool = False, files: bool = True) -> Choice:
    """The image cache for image files wherever it has room: decoding each photo once and augmenting whole
    batches trained dogs-vs-cats 1.9x faster than decoding it every epoch on 2 CPU cores, and keeps a GPU
    fed (benchmarks/RESULTS.md, "Throughput"). ``stream`` for data sets held in memory (digits, MNIST,
    CIFAR), where there is nothing to decode and it was 12 % faster, and without room for a cache."""
    if not files:
        return Choice("data.pipeline", "stream", "images held in memory: nothing to decode")
    if cache_dir is None:
        return Choice("data.pipeline", "stream", "no data.cache_dir for an image cache")
    size = f"{cache_bytes / 2**30:.1f} GB" if cache_bytes >= 2**30 else f"{max(1, round(cache_bytes / 2**20))} MB"
    if built:
        return Choice("data.pipeline", "cache", f"its {size} image cache is built")
    folder = Path(cache_dir).expanduser().absolute()
    while not folder.exists():  # the cache folder is made on first use: its disk is that of its nearest parent
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if cache_bytes > free // 2:
        why = f"an image cache of {size} would take over half of the {free / 2**30:.1f} GB free there"
        return Choice("data.pipeline", "stream", why)
    return Choice("data.pipeline", "cache", f"images decoded once into a {size} cache, batches augmented in place")


def network_minimum(layout: str, stem_name: str) -> int:
    """The smallest size ``image_size`` may choose: a multiple of 8, and 64 for the 11x11/4 stem (15x15 first map)."""
    stem_name = "imagenet" if is_auto(stem_name) else stem_name
    floor = 64 if stem_name == "imagenet" else 0
    return max(floor, math.ceil(min_input_size(layout, stem_name) / 8) * 8)
