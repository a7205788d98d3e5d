"""The one way files that are later trusted get written: beside the target, then renamed over it.

A crash, a kill or a full disk while writing leaves the old file (or none) under the target name,
never half of a new one, and no temporary file behind. ``os.replace`` is atomic on one file system.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path to write ``target``'s content to; it becomes ``target`` when the block ends without error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # per process: parallel runs of a sweep
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_atomic(target: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``target`` atomically, flushed to disk before the rename."""
    with atomic_path(target) as partial, open(partial, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
