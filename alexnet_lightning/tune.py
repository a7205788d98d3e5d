"""Lightning's Tuner behind ``tune.batch_size`` and ``tune.lr_find``: run before ``fit``, results kept.

The batch size finder doubles ``data.batch_size`` until memory runs out (on a CPU it stops after
``tune.batch_size_trials`` doublings); the learning-rate finder sweeps the lr over
``tune.lr_find_steps`` steps, saves its plot and the run then trains with the suggestion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig

from alexnet_lightning import plots
from alexnet_lightning.atomic import write_json
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.module import AlexNetClassifier


def tune(trainer: L.Trainer, model: AlexNetClassifier, datamodule: ImageDataModule, cfg: DictConfig, out: Path):
    """Apply the enabled finders and write what they found to ``tuned.json`` in the run directory."""
    if not (cfg.batch_size or cfg.lr_find):
        return
    tuner = Tuner(trainer)
    found: dict[str, Any] = {}
    if cfg.batch_size:
        found["batch_size"] = tuner.scale_batch_size(  # from data.batch_size up (Lightning's default starts at 2)
            model, datamodule=datamodule, mode="power", max_trials=cfg.batch_size_trials, init_val=datamodule.batch_size
        )
    if cfg.lr_find:
        finder = tuner.lr_find(model, datamodule=datamodule, num_training=cfg.lr_find_steps, update_attr=False)
        lr = finder.suggestion() if finder is not None else None
        if finder is not None and lr is not None:
            model.hparams.optimizer["lr"] = lr
            if "max_lr" in (model.hparams.scheduler or {}):  # OneCycleLR peaks at the found lr
                model.hparams.scheduler["max_lr"] = lr
            plots.save(finder.plot(suggest=True), out / "lr_finder.png")  # type: ignore[arg-type]  # no ax: a Figure
        found["lr"] = lr
    write_json(out / "tuned.json", found)
    print(f"tuned: {found}")
