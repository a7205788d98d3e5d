"""The one-time check of every image file before training, and content hashes for the doctor.

Each file is opened and decoded once (JPEGs at reduced scale) in a pool of one process per core
(pool.py), in chunks of paths. The result is a few arrays (sizes, modes), not a Python
object per file, and is cached under the fingerprint of the file list, so the next run of the same
folder (and every other DDP rank or node, which waits for it: lock.py) skips the check.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.progress import track

from alexnet_lightning import sizing
from alexnet_lightning.atomic import write_atomic
from alexnet_lightning.data.decode import BadImageError, check
from alexnet_lightning.data.fingerprint import fingerprint
from alexnet_lightning.data.lock import exclusive
from alexnet_lightning.data.pool import CHUNK, pool_size, process_pool
from alexnet_lightning.data.progress import PassProgress

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
SCAN_VERSION = "scan-v2"


@dataclass
class Scan:
    """What the check found, in the order of the files checked: width and height (0 for a bad file), mode (an
    index into ``mode_names``, -1 for a bad file), and the reason for each bad file."""

    sizes: np.ndarray
    modes: np.ndarray
    mode_names: list[str]
    bad: dict[str, str]

    @property
    def good(self) -> np.ndarray:
        return self.modes >= 0

    def mode_of(self, keep: np.ndarray) -> list[str]:
        """The modes (``RGB``, ``L``, ...) of the files selected by ``keep`` (a mask or positions)."""
        return [self.mode_names[m] for m in self.modes[keep]]


def _parallel(fn: Callable[[T], R], items: Sequence[T], what: str, workers: int | None) -> list[R]:
    workers = workers or min(8, sizing.cores() + 2)  # + 2: some threads wait on the disk
    with ThreadPoolExecutor(workers) as pool:
        return list(
            track(pool.map(fn, items), description=what, total=len(items), transient=True, disable=len(items) < 500)
        )


def _check_one(path: str) -> tuple[int, int, str] | str:
    try:
        return check(path)
    except BadImageError as e:
        return str(e)


def _check_chunk(job: tuple[int, list[str]]) -> tuple[int, list[tuple[int, int, str] | str]]:
    start, paths = job
    return start, [_check_one(path) for path in paths]


def scan_files(
    paths: Sequence[Path], cache_dir: str | Path | None = None, workers: int | None = None, progress: bool = True
) -> Scan:
    """Check ``paths`` (header + decode) in a pool of ``workers`` processes (default: one per core); reuse a
    cached result for the same files, or wait for the process that is building it."""
    if cache_dir is None:
        return _check_all(paths, workers, progress)
    cache = Path(cache_dir) / "checks" / f"{fingerprint(paths, SCAN_VERSION)}.npz"
    with exclusive(cache, "file check"):
        scan = _load(cache, len(paths))
        if scan is None:
            scan = _check_all(paths, workers, progress)
            _save(cache, scan)  # runs of a sweep and other ranks share it
        else:
            log.info("file check of %d files reused from %s", len(paths), cache)
    return scan


def _check_all(paths: Sequence[Path], workers: int | None, progress: bool) -> Scan:
    n = len(paths)
    sizes, modes = np.zeros((n, 2), dtype=np.int32), np.full(n, -1, dtype=np.int16)
    mode_index: dict[str, int] = {}
    bad: dict[str, str] = {}
    jobs = ((start, [str(paths[i]) for i in range(start, min(start + CHUNK, n))]) for start in range(0, n, CHUNK))
    workers = pool_size(n, workers)
    with PassProgress("checking images", n, progress) as bar, process_pool(workers) as imap:
        for start, results in imap(_check_chunk, jobs):
            for i, result in enumerate(results, start):
                if isinstance(result, str):
                    bad[str(paths[i])] = result
                else:
                    sizes[i] = result[:2]
                    modes[i] = mode_index.setdefault(result[2], len(mode_index))
            bar.advance(len(results))
        bar.finish(f"checked {n} image files ({len(bad)} bad) in {workers} process{'es' if workers > 1 else ''}")
    return Scan(sizes, modes, list(mode_index), bad)


def _save(path: Path, scan: Scan) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        sizes=scan.sizes,
        modes=scan.modes,
        mode_names=np.array(scan.mode_names, dtype=str),
        bad_paths=np.array(list(scan.bad), dtype=str),
        bad_reasons=np.array(list(scan.bad.values()), dtype=str),
    )
    write_atomic(path, buffer.getvalue())


def _load(path: Path, count: int) -> Scan | None:
    """The scan an earlier run saved, or None when there is none or it is damaged (then it is checked again).

    Read without pickle (arrays only), and checked against the file count and itself: a file that is not
    what ``_save`` wrote is never trusted.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            sizes, modes, names = saved["sizes"], saved["modes"], saved["mode_names"].tolist()
            bad = dict(zip(saved["bad_paths"].tolist(), saved["bad_reasons"].tolist(), strict=True))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    shapes_ok = sizes.shape == (count, 2) and modes.shape == (count,) and sizes.dtype.kind == modes.dtype.kind == "i"
    if not shapes_ok or modes.max(initial=-1) >= len(names) or int((modes < 0).sum()) != len(bad):
        return None
    return Scan(sizes, modes, [str(n) for n in names], {str(k): str(v) for k, v in bad.items()})


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
