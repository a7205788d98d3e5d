"""The process pool of the set-up's passes over every image (file check, image cache).

For small images most of a decode is PIL's Python code, which holds the GIL: threads would use about
one core, processes use them all. Workers are forked where the platform forks, so they start in
milliseconds and share the parent's modules; they inherit the folder's listing but never touch it
(arrays.py keeps the garbage collector off inherited objects), and each task carries only its own
chunk of items.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from alexnet_lightning import sizing
from alexnet_lightning.data import arrays  # noqa: F401  # registers the garbage-collector freeze at fork

CHUNK = 256
"""Items per task: large enough that passing them costs little, small enough to spread the work."""


Imap = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def pool_size(items: int, workers: int | None) -> int:
    """``workers`` (default: one per core this process may use), but no more than there are chunks of items."""
    return min(workers or sizing.cores(), -(-items // CHUNK))


@contextmanager
def process_pool(workers: int) -> Iterator[Imap]:
    """``imap`` over a pool of ``workers`` processes, in order; for fewer than two, ``map`` in this process."""
    if workers < 2:
        yield map
        return
    with multiprocessing.get_context().Pool(workers) as pool:  # leaving terminates it
        yield pool.imap
