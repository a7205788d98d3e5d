"""Progress of the set-up's passes over every image (file check, statistics, image cache), with the time left.

On a terminal a rich bar shows it; a batch job's log file (SLURM, nohup) gets a line every
``LOG_EVERY`` seconds instead, with the rate and the time left, so that a first run on a large folder
never sits silent for minutes. The last line (``done``) says how long the pass took per image.
"""

from __future__ import annotations

import logging
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger(__name__)
LOG_EVERY = 30.0
"""Seconds between two progress lines in the log."""
MIN_BAR = 500
"""Fewer images than this finish before a bar is worth drawing."""


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PassProgress:
    """``with PassProgress("checking images", n) as progress: ... progress.advance(k)``."""

    def __init__(self, what: str, total: int, enabled: bool = True) -> None:
        self.what, self.total, self.enabled = what, total, enabled
        self.done = 0
        self.started = self.logged = time.monotonic()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bar = Progress(*columns, transient=True, disable=not enabled or total < MIN_BAR)
        self.task = self.bar.add_task(what, total=total)

    def __enter__(self) -> PassProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.bar.advance(self.task, n)
        now = time.monotonic()
        if self.enabled and now - self.logged >= LOG_EVERY and self.done < self.total:
            self.logged = now
            elapsed = now - self.started
            left = elapsed / self.done * (self.total - self.done)
            log.info(
                "%s: %d of %d (%.0f%%), %.2f ms an image, about %s left",
                self.what,
                self.done,
                self.total,
                100 * self.done / self.total,
                1000 * elapsed / self.done,
                duration(left),
            )

    def finish(self, done: str) -> None:
        """Log ``done`` (what the pass did) with its time and its time per image."""
        elapsed = time.monotonic() - self.started
        if self.enabled:
            log.info("%s in %.1f s (%.2f ms an image)", done, elapsed, 1000 * elapsed / max(self.total, 1))
