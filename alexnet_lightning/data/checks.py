"""The one-time check of every image file before training, and content hashes for the doctor.

Each file is opened and decoded once (JPEGs at reduced scale) in a thread pool: PIL releases
the GIL while decoding, so threads use every core without pickling paths to processes. The
result is cached by the fingerprint of the file list, so the next run of the same folder
skips the scan.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.progress import track

from alexnet_lightning.atomic import write_atomic
from alexnet_lightning.data.decode import BadImageError, check
from alexnet_lightning.data.fingerprint import fingerprint

T = TypeVar("T")
R = TypeVar("R")
SCAN_VERSION = "scan-v1"


@dataclass
class Scan:
    """What the check found: width, height and mode of each good file; the reason for each bad one."""

    info: dict[str, tuple[int, int, str]]
    bad: dict[str, str]


def _parallel(fn: Callable[[T], R], items: Sequence[T], what: str, workers: int | None) -> list[R]:
    workers = workers or min(8, (os.cpu_count() or 1) + 2)  # + 2: some threads wait on the disk
    with ThreadPoolExecutor(workers) as pool:
        return list(
            track(pool.map(fn, items), description=what, total=len(items), transient=True, disable=len(items) < 500)
        )


def _check_one(path: str) -> tuple[int, int, str] | str:
    try:
        return check(path)
    except BadImageError as e:
        return str(e)


def scan_files(paths: Sequence[Path], cache_dir: str | Path | None = None, workers: int | None = None) -> Scan:
    """Check ``paths`` (header + decode) in parallel; reuse a cached result for the same files."""
    names = [str(p) for p in paths]
    cache = Path(cache_dir) / "checks" / f"{fingerprint(names, SCAN_VERSION)}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            saved = json.loads(cache.read_text())
            return Scan({k: tuple(v) for k, v in saved["info"].items()}, saved["bad"])
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged cache file is rebuilt below
    results = _parallel(_check_one, names, "checking images", workers)
    scan = Scan(
        info={n: r for n, r in zip(names, results, strict=True) if not isinstance(r, str)},
        bad={n: r for n, r in zip(names, results, strict=True) if isinstance(r, str)},
    )
    if cache is not None:
        write_atomic(cache, json.dumps({"info": scan.info, "bad": scan.bad}))  # parallel runs of a sweep share it
    return scan


def _file_hash(path: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_hashes(paths: Iterable[Path], workers: int | None = None) -> list[str]:
    """A hash of each file's bytes, to find exact duplicates under different names."""
    return _parallel(_file_hash, [str(p) for p in paths], "hashing files", workers)


def format_bad_files(bad: dict[str, str]) -> str:
    """``path<TAB>reason`` lines, the content of a run's ``bad_files.txt``."""
    return "".join(f"{path}\t{reason}\n" for path, reason in sorted(bad.items()))
