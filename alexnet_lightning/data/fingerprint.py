"""Cache keys: a short hash of an item list and the settings a cached result depends on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def fingerprint(items: Iterable[object], *settings: object) -> str:
    """Hash item names (plus size and mtime for files) and settings such as the image size.

    A renamed, added, removed or rewritten file changes the key, so caches keyed by it are
    rebuilt exactly when the data changed.
    """
    digest = hashlib.sha256()
    for item in items:
        digest.update(str(item).encode())
        if isinstance(item, (str, Path)) and os.path.isfile(item):
            stat = os.stat(item)
            digest.update(f":{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(b"\0")
    for setting in settings:
        digest.update(repr(setting).encode())
    return digest.hexdigest()[:16]
