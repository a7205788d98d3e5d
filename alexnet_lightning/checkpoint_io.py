"""Atomic checkpoint files: a crash while saving never leaves a truncated ``last.ckpt``.

Lightning's own save goes through fsspec, whose local "transaction" writes to the system temp
folder and then copies across file systems, without an fsync. Here a local checkpoint is written
next to its target, flushed to disk, then renamed over it with ``os.replace``, which is atomic:
readers see the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alexnet_lightning.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with write-then-rename for local paths (remote paths: Lightning's way)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_path(path) as partial, open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
