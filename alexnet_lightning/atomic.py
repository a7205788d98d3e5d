"""The one way files that are later trusted get written: beside the target, then renamed over it.

A crash, a kill or a full disk while writing leaves the old file (or none) under the target name,
never half of a new one, and no temporary file behind. ``os.replace`` is atomic on one file system.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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


def write_csv(target: str | Path, header: list[str], rows: list[list[Any]]) -> None:
    """A CSV file with a header row, written atomically."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(target, text.getvalue())


def write_json(target: str | Path, data: Any) -> None:
    """Strict JSON (NaN and infinity become null, which every JSON reader accepts), written atomically."""
    write_atomic(target, json.dumps(_finite(data), indent=1) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
