"""One process builds a cache entry; the others that need it at the same time wait, then reuse it.

The set-up's results (file check, statistics, image cache) live under ``paths.cache_dir``, keyed by the
file list (fingerprint.py). Every DDP rank, every node and every run of a parallel sweep sets up the
same folder at once; an exclusive POSIX lock (fcntl) on ``<entry>.lock`` lets the first of them build
the entry while the others block, find it built and read it. The kernel drops a lock when its holder
exits, also when it crashes, so a waiter then builds the entry itself. With ``paths.cache_dir`` on a
file system that all nodes share and that supports POSIX locks (NFS, Lustre mounted with ``flock``,
GPFS, BeeGFS) that is once per job; on each node's local disk, once per node. Where the file system
refuses locks, each process builds the entry itself (atomic renames keep that sound, only slower).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@contextmanager
def exclusive(entry: Path, what: str) -> Iterator[None]:
    """Hold the lock of cache entry ``entry`` inside the block (``what`` names it in the waiting message).

    The holder removes the lock file before releasing it, so no lock file outlives its use; a waiter that
    then finds its file gone (or replaced) locks the new one instead.
    """
    lock = entry.with_name(entry.name + ".lock")
    held = _acquire(lock, what)
    try:
        yield
    finally:
        if held is not None:
            lock.unlink(missing_ok=True)
            held.close()  # releases the lock


def _acquire(lock: Path, what: str) -> IO | None:
    """The lock file, opened and locked; None where it cannot be (a read-only cache, a file system without
    locks): then this process goes on without waiting for others."""
    waiting = False
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            f = open(lock, "a")  # noqa: SIM115  # closed by exclusive() or below
        except OSError as e:
            log.warning("%s: cannot create %s (%s): not waiting for other processes", what, lock, e.strerror)
            return None
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):  # no locks here (ENOLCK, ...)
                f.close()
                log.warning("%s: cannot lock %s (%s): not waiting for other processes", what, lock, e.strerror)
                return None
            if not waiting:
                log.info("%s: another process is building it (it holds %s): waiting for it", what, lock)
                waiting = True
            fcntl.lockf(f, fcntl.LOCK_EX)
        if _is_current(f, lock):
            return f
        f.close()  # the holder removed this file when it finished: lock the next one


def _is_current(f: IO, lock: Path) -> bool:
    try:
        now, held = os.stat(lock), os.fstat(f.fileno())
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
