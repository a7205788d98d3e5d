"""A test-only callback: the items each DDP rank's loaders gave it, per stage and epoch (tests/test_multinode.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L


class RecordSamples(L.Callback):
    """Write ``rank<global rank>.json`` into ``out_dir``: {"<stage>/<epoch>": [dataset positions, in batch order]}.

    A batch's positions are its slice of the loader's sampler order (Lightning's DistributedSampler,
    or the data module's own), read when the batch starts: the items this rank computed on.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.order: list[int] = []
        self.seen: dict[str, list[int]] = defaultdict(list)

    def _start(self, loader: Any) -> None:
        self.order = list(loader.sampler)

    def _batch(self, trainer: L.Trainer, stage: str, loader: Any, batch_idx: int) -> None:
        size = loader.batch_size
        self.seen[f"{stage}/{trainer.current_epoch}"] += self.order[batch_idx * size : (batch_idx + 1) * size]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer.train_dataloader)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch(trainer, "train", trainer.train_dataloader, batch_idx)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer.val_dataloaders)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self._batch(trainer, "val", trainer.val_dataloaders, batch_idx)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer.test_dataloaders)

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._batch(trainer, "test", trainer.test_dataloaders, batch_idx)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))
