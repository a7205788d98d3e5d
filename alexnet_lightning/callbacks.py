"""Lightning callbacks beyond Lightning's own: curves.png, TensorBoard images and hparams, exact resume.

The TensorBoard callbacks do nothing when no TensorBoardLogger is configured (e.g. ``logger=csv``).
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.tensorboard.summary import hparams
from torchmetrics.classification import MulticlassConfusionMatrix
from torchvision.utils import make_grid

from alexnet_lightning import plots
from alexnet_lightning.errors import UserError

log = logging.getLogger(__name__)

CURVE_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")
FINAL_METRICS = ("val/acc_best", "val/acc", "val/loss", "train/loss", "test/acc", "test/loss")


def _tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def _denormalize(x: torch.Tensor, module: L.LightningModule) -> torch.Tensor:
    """Back to [0, 1] for display, using the statistics the checkpoint carries."""
    return plots.denormalize(x.float(), module.hparams["mean"], module.hparams["std"])


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (int, float, str, bool)):
        out[prefix] = value
    elif value is None:
        out[prefix] = "null"


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


class HParamsSummary(L.Callback):
    """Write TensorBoard's HPARAMS entry so sweep runs can be compared on their final metrics.

    The entry names the metric tags; TensorBoard shows each tag's last logged value, so it is written
    once at the start and shows the final (best, test) values as soon as they are logged.
    """

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tb = _tensorboard(trainer)
        if tb is None:
            return
        params: dict[str, Any] = {}
        keep = ("model", "optimizer", "scheduler", "label_smoothing", "image_size")
        _flatten("", {k: v for k, v in pl_module.hparams.items() if k in keep}, params)
        datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning, undeclared
        for key in ("batch_size", "augment", "normalize"):
            if hasattr(datamodule, key):
                params[f"data.{key}"] = getattr(datamodule, key)
        params.update(max_epochs=trainer.max_epochs or -1, accumulate_grad_batches=trainer.accumulate_grad_batches)
        for summary in hparams(params, dict.fromkeys(FINAL_METRICS, 0.0)):
            tb.experiment._get_file_writer().add_summary(summary)


class AugmentedImageGrid(L.Callback):
    """At the start of training, show ``n`` training images as the model sees them (augmented).

    With ``data.pipeline=cache`` the data set holds cached uint8 images: the data module's device
    augmenter turns them into what the model sees.
    """

    def __init__(self, n: int = 32) -> None:
        self.n = n

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tb = _tensorboard(trainer)
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None) or getattr(loader, "data", None)  # DataLoader | DeviceBatches
        if tb is None or dataset is None or len(dataset) == 0:
            return
        with torch.random.fork_rng(devices=[]):  # leave the training's random stream as it was
            samples = [dataset[i] for i in range(min(self.n, len(dataset)))]
        images = torch.stack([s[0] for s in samples])
        augment = getattr(trainer.datamodule, "device_augment", None)  # type: ignore[attr-defined]  # set by Lightning, undeclared
        if augment is not None:
            sizes = torch.stack([s[2] for s in samples]) if len(samples[0]) == 3 else None
            images = augment(images.to(pl_module.device), train=True, sizes=sizes)
        grid = make_grid(_denormalize(images, pl_module), nrow=8)
        tb.experiment.add_image("train/augmented_images", grid, trainer.global_step)


class ValidationImages(L.Callback):
    """The confusion matrix and up to ``n_misclassified`` misclassified images of the first validation
    epoch and of each later one whose accuracy beats every epoch before it, so the latest figures are
    always those of the best checkpoint. Drawing both takes 0.6-1 s on a CPU: every epoch, that was
    a sixth of the default digits run."""

    def __init__(self, n_misclassified: int = 16) -> None:
        self.n_misclassified = n_misclassified
        self.best = -1.0
        self.confusion: MulticlassConfusionMatrix | None = None
        self.wrong: list[tuple[torch.Tensor, int, int]] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = len(pl_module.hparams["class_names"])
        if self.confusion is None:
            self.confusion = MulticlassConfusionMatrix(n).to(pl_module.device)
        self.confusion.reset()
        self.wrong = []

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if not isinstance(outputs, dict) or "logits" not in outputs:
            return
        x, y = batch
        pred = outputs["logits"].argmax(dim=1)
        assert self.confusion is not None  # on_validation_epoch_start made it
        self.confusion.update(pred, y)
        for i in torch.nonzero(pred != y).flatten().tolist()[: self.n_misclassified - len(self.wrong)]:
            self.wrong.append((x[i].detach().cpu(), int(y[i]), int(pred[i])))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.confusion is not None
        matrix = self.confusion.compute().cpu()  # summed over all DDP ranks
        tb = _tensorboard(trainer)
        if trainer.sanity_checking or tb is None:
            return
        accuracy = float(matrix.trace() / matrix.sum().clamp_min(1))
        if accuracy <= self.best:
            return
        self.best = accuracy
        if trainer.global_rank != 0:
            return
        names = list(pl_module.hparams["class_names"])
        tb.experiment.add_figure("val/confusion_matrix", plots.confusion(matrix.numpy(), names), trainer.global_step)
        if self.wrong:
            images = [_denormalize(image[None], pl_module)[0] for image, _, _ in self.wrong]
            titles = [f"{names[true]} -> {names[pred]}" for _, true, pred in self.wrong]
            tb.experiment.add_figure("val/misclassified", plots.image_grid(images, titles), trainer.global_step)


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that remembers the best score of the run it resumes, in any directory.

    Lightning restores that score only when the run resumes in the same directory; a resumed run gets
    a new one from Hydra, and its first epoch would then replace the best checkpoint whether better
    or not (and test would use it). Here the resumed run keeps the earlier best file and score, and
    writes its own best file only for an epoch that beats them.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath") != self.dirpath and Path(state_dict.get("best_model_path") or "").is_file():
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)


class RandomStateCheckpoint(L.Callback):
    """Save the random generators with each checkpoint and restore them when training resumes.

    Lightning restores weights, optimizer, scheduler and loop counters but re-seeds the generators,
    so without this a resumed run shuffles, augments and drops out differently from the run it
    continues. The state is applied at ``on_train_start``, after the sanity check, whose validation
    loader draws from the generator too. Stored as a tensor and plain lists, so checkpoints still
    load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],  # type: ignore[index]  # a tuple (legacy=True)
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is None:
            return
        torch.set_rng_state(self.pending["torch"])
        random.setstate(_as_tuples(self.pending["python"]))
        name, keys, *rest = self.pending["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
        self.pending = None


def _as_tuples(value: Any) -> Any:
    """random.setstate wants the tuples it gave; a checkpoint round trip may turn them into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _label_counts(datamodule: Any, split: str, num_classes: int) -> torch.Tensor:
    labels = datamodule.split_labels(split) if hasattr(datamodule, "split_labels") else []
    return torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes).double()


class LearningWatch(L.Callback):
    """Say when a run is not learning, and stop one whose loss is no longer a number.

    The chance loss is the cross-entropy of always predicting the training split's class frequencies
    (ln C for balanced classes); chance accuracy is always answering the largest validation class.
    "At chance" allows ``margin``, or two standard deviations of chance accuracy on the validation
    set where that is more (a lucky epoch on 60 images reaches 0.17 at chance 0.10), but never more
    than half the way from chance to perfect (on 4 images two standard deviations span everything). At the first
    epoch end after ``after_steps`` optimizer steps, a run whose mean training loss is still above
    ``ratio`` x the chance loss while its best validation accuracy is at chance is warned about
    once, with a learning rate to try. (The loss alone misleads: a two-class
    run that learns well often stays above ln 2 for its first epochs.) At the end, a best model no
    better than chance is named as such. A NaN or infinite loss stops the run with one line.
    """

    def __init__(self, after_steps: int = 100, ratio: float = 0.9, margin: float = 0.05, check_every: int = 10) -> None:
        self.after_steps, self.ratio, self.margin, self.check_every = after_steps, ratio, margin, check_every
        self.chance_loss = self.chance_acc = self.at_chance = math.nan
        self.checked = False
        self.warnings: list[str] = []

    def _warn(self, trainer: L.Trainer, message: str) -> None:
        self.warnings.append(message)
        if trainer.is_global_zero:
            log.warning(message)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = len(pl_module.hparams["class_names"])
        counts = _label_counts(trainer.datamodule, "train", n)  # type: ignore[attr-defined]  # set by Lightning, undeclared
        p = counts[counts > 0] / counts.sum()
        self.chance_loss = float(-(p * p.log()).sum()) if len(p) else math.nan
        val = _label_counts(trainer.datamodule, "val", n)  # type: ignore[attr-defined]  # set by Lightning, undeclared
        self.chance_acc = float(val.max() / val.sum()) if val.sum() else math.nan
        n_val = float(val.sum())
        noise = 2 * math.sqrt(self.chance_acc * (1 - self.chance_acc) / n_val) if n_val else 0.0
        # best val/acc up to here: no better than chance; never past halfway to perfect (a 4-image val set)
        self.at_chance = self.chance_acc + min(max(self.margin, noise), (1 - self.chance_acc) / 2)
        self.checked = trainer.global_step >= self.after_steps  # a resumed run was checked before

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx % self.check_every or not isinstance(outputs, dict) or "loss" not in outputs:
            return
        loss = float(outputs["loss"].detach())
        if not math.isfinite(loss):
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            last = _last_checkpoint(trainer)
            raise UserError(
                f"the training loss became {loss} in epoch {trainer.current_epoch} (step {trainer.global_step}): "
                f"the run diverged and stops; lower the learning rate (now {lr:.3g}), e.g. optimizer.lr={lr / 10:.3g}"
                + (f"; the last good checkpoint: {last}" if last else "")
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.checked or "train/loss" not in metrics or trainer.global_step < self.after_steps:
            return
        self.checked = True
        loss, best = float(metrics["train/loss"]), float(metrics.get("val/acc_best", math.nan))
        pl_module.log("train/chance_loss", self.chance_loss, sync_dist=True)
        if loss >= self.ratio * self.chance_loss and not best > self.at_chance:
            lr = pl_module.hparams["optimizer"].get("lr", trainer.optimizers[0].param_groups[0]["lr"])
            self._warn(
                trainer,
                f"not learning: after {trainer.global_step} steps train/loss is {loss:.3f}, not below the chance loss "
                f"{self.chance_loss:.3f}, and val/acc {best:.3f} is at chance ({self.chance_acc:.3f}); "
                f"try a 10x lower learning rate: optimizer.lr={lr / 10:.3g} (now {lr:.3g})",
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = getattr(pl_module, "val_acc_best", None)
        # nothing to judge without validation (e.g. limit_val_batches=0: MaxMetric never updated)
        if best is None or not math.isfinite(self.chance_acc) or not best.update_called:
            return
        best_acc = float(best.compute())
        stopper = trainer.early_stopping_callback
        epochs = stopper.stopped_epoch + 1 if stopper is not None and stopper.stopped_epoch else trainer.current_epoch
        plural = "epoch" if epochs == 1 else "epochs"
        how = (
            f"early stopping ended the run after {epochs} {plural}"
            if stopper is not None and stopper.stopped_epoch
            else f"training ended after {epochs} {plural}"
        )
        if best_acc <= self.at_chance:
            advice = (
                "the run did not learn: see the warning above, or try optimizer.lr=1e-4 and more epochs"
                if self.warnings
                else f"train longer (the learning check waits {self.after_steps} steps), or try optimizer.lr=1e-4"
            )
            self._warn(
                trainer,
                f"{how}: the best model (val/acc {best_acc:.3f}) is no better than chance ({self.chance_acc:.3f}, "
                f"always answering the largest class); {advice}",
            )
        elif trainer.is_global_zero:
            log.info("%s: best val/acc %.3f (chance %.3f)", how, best_acc, self.chance_acc)


def _last_checkpoint(trainer: L.Trainer) -> str:
    paths = [
        getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "") for cb in trainer.checkpoint_callbacks
    ]
    existing = [p for p in paths if p and Path(p).is_file()]
    return max(existing, key=lambda p: Path(p).stat().st_mtime) if existing else ""
