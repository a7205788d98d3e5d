"""Per-image data as a few numpy arrays instead of one Python object per image.

A folder listed as ``Path`` objects costs about 400 bytes of small Python objects per file (500 MB for
ImageNet's 1.28 million). DataLoader workers are forked: they share the parent's memory pages until
something writes to them, and merely reading a Python object writes its reference count, so every
worker that walked such a list copied the pages it touched: memory grew with folder size times
workers (PyTorch issue 13246). Paths packed into one byte buffer with offsets, and labels and
positions as integer arrays, are a few large objects whose pages are only ever read.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_lightning.data.sources import Samples

TAKE_CHUNK = 16384
"""Paths gathered at once by ``PathArray.take``."""


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

    def take(self, positions: Sequence[int] | np.ndarray) -> PathArray:
        """The paths at ``positions``, packed again (what ``ndarray.take`` is for arrays)."""
        positions = np.asarray(positions, dtype=np.int64)
        lengths = np.diff(self.offsets)[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        buffer = np.empty(offsets[-1], dtype=np.uint8)
        for start in range(0, len(positions), TAKE_CHUNK):  # 8 bytes of index per byte: a chunk at a time
            stop = min(start + TAKE_CHUNK, len(positions))
            index = np.repeat(self.offsets[positions[start:stop]] - offsets[start:stop], lengths[start:stop])
            index += np.arange(offsets[start], offsets[stop])
            buffer[offsets[start] : offsets[stop]] = self.buffer[index]
        return PathArray(buffer, offsets)


def select(samples: Samples, keep: Sequence[int] | np.ndarray) -> Samples:
    """``Samples.subset`` for compact samples: the positions ``keep`` only, the shipped splits renumbered."""
    keep = np.asarray(keep, dtype=np.int64)
    renumber = np.full(len(samples.items), -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    splits = {
        name: [int(p) for p in renumber[np.asarray(pos, dtype=np.int64)] if p >= 0]
        for name, pos in samples.splits.items()
    }
    return dataclasses.replace(samples, items=samples.items.take(keep), labels=samples.labels.take(keep), splits=splits)


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


def release_freed_memory(workers: int) -> None:
    """Before a loader forks ``workers`` processes: collect garbage, then hand the heap's free pages back to
    the system. Nothing to do when it forks none.

    The set-up's passes over every file leave freed memory inside the heap. Pages that a forked worker
    shares with this process are copied as soon as either writes to them, and this process's later
    allocations land exactly in those free spaces: at 200,000 files that copied about 150 MB per run
    (benchmarks/RESULTS.md, scale study). Returned pages are no longer shared, so nothing is copied.
    ``malloc_trim`` is glibc's; elsewhere this only collects garbage. A full collection takes about
    0.25 s in a process that has imported torch and Lightning, hence nothing without workers.
    """
    if not workers:
        return
    gc.collect()
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


# In a forked child (DataLoader workers, the set-up's process pools): leave the inherited objects out of
# garbage collection. A full collection writes to every tracked object it visits, which would copy the
# parent's pages into each worker although the worker never uses those objects; gc.freeze moves them
# aside with a list splice (the remedy its documentation gives for fork).
os.register_at_fork(after_in_child=gc.freeze)
