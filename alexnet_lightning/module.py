"""AlexNetClassifier: the LightningModule that trains, evaluates and predicts.

Its hyperparameters are plain values (the network's options, the optimizer and scheduler by
their torch class name, class names, image size, normalization), so a checkpoint describes itself,
loads with ``torch.load(weights_only=True)`` and names no code. The network, optimizer and
scheduler are built from them through alexnet_lightning.hparams, in training and in loading alike.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.parsing import AttributeDict
from lightning.pytorch.utilities.types import OptimizerConfig, OptimizerLRSchedulerConfig
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from alexnet_lightning.errors import UserError
from alexnet_lightning.hparams import build_network, build_optimizer, build_scheduler, plain_hparams
from alexnet_lightning.schedule import fit_schedule_to_run


def accuracy_metrics(num_classes: int) -> MetricCollection:
    """Top-1 accuracy, and top-5 where there are at least five classes: training, eval and reports alike.

    Without torchmetrics' argument checks: they compare every batch's targets with the class count on the
    host, a device synchronization per step on a GPU; the labels come from the data module's own checks.
    """
    metrics: dict[str, Metric | MetricCollection] = {
        "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
    }
    if num_classes >= 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False)
    return MetricCollection(metrics)


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay weight matrices and filters, never biases or normalization parameters."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "weights"},
        {"params": no_decay, "weight_decay": 0.0, "name": "biases_norms"},
    ]


def model_option(cfg: dict[str, Any], key: str) -> Any:
    return cfg.get(key, "default")


class AlexNetClassifier(L.LightningModule):
    hparams: AttributeDict  # what save_hyperparameters() stores; Lightning declares any MutableMapping

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        class_names: list[str],
        image_size: int,
        in_channels: int,
        mean: list[float],
        std: list[float],
        label_smoothing: float = 0.0,
        data: dict[str, Any] | None = None,
        crop_fraction: float = 1.0,
    ) -> None:
        """``data`` records where the images were (source, folder, split), so eval can find them again;
        ``crop_fraction`` is the eval view's center crop (data.crop_fraction), so predict sees what val saw."""
        super().__init__()
        hparams = plain_hparams(  # a training config's _target_ form becomes the plain form that checkpoints store
            {"model": model, "optimizer": optimizer, "scheduler": scheduler, "class_names": class_names,
             "image_size": image_size, "in_channels": in_channels, "mean": mean, "std": std,
             "label_smoothing": label_smoothing, "data": data, "crop_fraction": crop_fraction}
        )  # fmt: skip
        self.save_hyperparameters(hparams)
        model = hparams["model"]
        self.net = build_network(model, num_classes=len(class_names), in_channels=in_channels)
        self._check_input_size(in_channels, image_size)
        self.memory_format = torch.channels_last if model.get("channels_last") else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        if model.get("compile"):
            self.net.compile()  # in place: parameter names, and so checkpoints, stay those of the plain network
        self._check_optimizer(hparams["optimizer"])
        self.label_smoothing = label_smoothing
        self.train_metrics = accuracy_metrics(len(class_names)).clone(prefix="train/")
        self.val_metrics = accuracy_metrics(len(class_names)).clone(prefix="val/")
        self.test_metrics = accuracy_metrics(len(class_names)).clone(prefix="test/")
        # the epoch loss as a sum and a count synced over DDP processes: exact when they ran different numbers of
        # images (validation and test), where Lightning's own mean of a logged tensor is not (its issue #21859);
        # "disable" keeps a NaN loss in the epoch's value, as a plain mean would
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        self.val_acc_best = MaxMetric()
        self.restored_acc_best: float | None = None

    def _check_input_size(self, channels: int, size: int) -> None:
        """Fail before training if the image size shrinks to nothing inside the network."""
        was_training = self.net.training
        try:
            with torch.no_grad():
                self.net.eval()(torch.zeros(1, channels, size, size))
        except RuntimeError:
            raise UserError(
                f"data.image_size={size} is too small for this network "
                f"(model.layout={model_option(self.hparams.model, 'layout')}, "
                f"stem={model_option(self.hparams.model, 'stem')}): use a larger size or model.stem=small"
            ) from None
        finally:
            self.net.train(was_training)

    @staticmethod
    def _check_optimizer(cfg: dict[str, Any]) -> None:
        """Fail before training, in one line, on values the optimizer would reject later."""
        try:
            build_optimizer(cfg, [nn.Parameter(torch.zeros(1))])
        except ValueError as e:
            raise UserError(f"optimizer config rejected: {e}") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor], metrics: MetricCollection, mean_loss: MeanMetric, stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        losses = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing, reduction="none")
        loss = losses.mean()
        metrics.update(logits, y)
        mean_loss.update(losses.detach())  # per image, unweighted: "disable" drops weights (torchmetrics #3434)
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss, logits

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, self.train_metrics, self.train_loss, "train")[0]

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity check's accuracy, not the resumed run's best
        if self.restored_acc_best is not None:
            self.val_acc_best.update(torch.tensor(self.restored_acc_best, device=self.device))
        fit_schedule_to_run(self.trainer, self.hparams.scheduler)  # a resumed run may be longer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_acc_best"] = float(self.val_acc_best.max_value)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        best = checkpoint.get("val_acc_best")
        self.restored_acc_best = best if best is not None and math.isfinite(best) else None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The logits go to callbacks (confusion matrix, misclassified images) through ``outputs``."""
        return {"logits": self._step(batch, self.val_metrics, self.val_loss, "val")[1].detach()}

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_metrics, self.test_loss, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities for a batch of images (or an (images, labels) pair)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=1)

    def configure_optimizers(self) -> OptimizerConfig | OptimizerLRSchedulerConfig:
        opt_cfg = dict(self.hparams.optimizer)  # checked again by build_optimizer: tune may have set the lr
        weight_decay = opt_cfg.pop("weight_decay", 0.0)
        optimizer = build_optimizer(opt_cfg, weight_decay_groups(self, weight_decay))
        sched_cfg = self.hparams.scheduler
        if not sched_cfg:
            return {"optimizer": optimizer}
        sched_cfg = dict(sched_cfg)
        interval = sched_cfg.pop("interval", "epoch")
        if sched_cfg.get("total_steps", 0) is None:
            sched_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        if sched_cfg.get("T_max", 0) is None:
            sched_cfg["T_max"] = max(1, self.trainer.max_epochs or 1)
        scheduler = build_scheduler(sched_cfg, optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
