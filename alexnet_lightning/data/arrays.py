"""Per-image data as a few numpy arrays instead of one Python object per image.

A folder listed as ``Path`` objects costs about 400 bytes of small Python objects per file (500 MB for
ImageNet's 1.28 million). DataLoader workers are forked: they share the parent's memory pages until
something writes to them, and merely reading a Python object writes its reference count, so every
worker that walked such a list copied the pages it touched: memory grew with folder size times
workers (PyTorch issue 13246). Paths packed into one byte buffer with offsets, and labels and
positions as integer arrays, are a few large objects whose pages are only ever read.
"""

from __future__ import annotations

import dataclasses
import gc
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_lightning.data.sources import Samples


class PathArray(Sequence[Path]):
    """Paths as one uint8 buffer and int64 offsets (about the path's length in bytes per file)."""

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray) -> None:
        self.buffer, self.offsets = buffer, offsets

    @classmethod
    def of(cls, paths: Iterable[str | Path]) -> PathArray:
        encoded = [os.fsencode(p) for p in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Path:  # type: ignore[override]  # no slices: take() selects many
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"path {i} of {len(self)}")
        return Path(os.fsdecode(self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes()))

    def take(self, positions: np.ndarray) -> PathArray:
        """The paths at ``positions``, packed again (what ``ndarray.take`` is for arrays)."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, lengths = self.offsets[positions], np.diff(self.offsets)[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return PathArray(self.buffer[index], offsets)


def compact(samples: Samples) -> Samples:
    """The same samples with ``items`` a PathArray (files) or an array (indices) and ``labels`` an int64 array.

    Both support ``take(positions)``, which is how a data set of one split gets its own arrays.
    """
    items: Any = samples.items
    if len(items) and all(isinstance(item, (str, Path)) for item in items):
        items = PathArray.of(items)
    elif not isinstance(items, (PathArray, np.ndarray)):
        items = np.asarray(items)
    return dataclasses.replace(samples, items=items, labels=np.asarray(samples.labels, dtype=np.int64))


# In a forked child (DataLoader workers, the set-up's process pools): leave the inherited objects out of
# garbage collection. A full collection writes to every tracked object it visits, which would copy the
# parent's pages into each worker although the worker never uses those objects; gc.freeze moves them
# aside with a list splice (the remedy its documentation gives for fork).
os.register_at_fork(after_in_child=gc.freeze)
