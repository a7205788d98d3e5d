"""Lightning callbacks of this template."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import lightning as L

from alexnet_lightning import plots

CURVE_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


class TrainingCurves(L.Callback):
    """Write ``curves.png`` (loss, accuracy and learning rate per epoch) when training ends.

    So that a user who never opens TensorBoard still sees how the run went. Values are the
    epoch metrics the module logged; the learning rate is the one each epoch trained with.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.series: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.optimizers:
            self.series["lr"].append((trainer.current_epoch, float(trainer.optimizers[0].param_groups[0]["lr"])))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        for name in CURVE_METRICS:
            if name in metrics:
                self.series[name].append((trainer.current_epoch, float(metrics[name])))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and any(self.series.values()):
            plots.save(plots.curves(self.series), self.path)
