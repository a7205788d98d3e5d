"""The training loops throughput.py times: the model limit, plain PyTorch loops, the data path alone, Lightning."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from throughput_clock import Clock, ClockCallback, EpochTimes
from throughput_paths import CLASSES, MEAN, STD, template_datamodule

from alexnet_lightning.data.device_augment import DeviceAugment
from alexnet_lightning.models.alexnet import build_alexnet
from alexnet_lightning.module import AlexNetClassifier


def optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, fused=True)


def plain_loop(
    batches: Callable[[], object],
    device: torch.device,
    clock: Clock,
    augment=None,
    bf16: bool | None = None,
    channels_last: bool | None = None,
) -> float:
    """The seed posts' loop: forward, loss, backward, step; bf16 autocast and channels_last on CUDA
    (``bf16``, ``channels_last``: force either on or off, e.g. the model limit in fp32)."""
    cuda = device.type == "cuda"
    bf16, channels_last = cuda if bf16 is None else bf16, cuda if channels_last is None else channels_last
    net = build_alexnet(num_classes=2).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = optimizer(net.parameters())
    clock.tick()
    while not clock.done:
        for x, y, *rest in batches():
            sizes = rest[0] if rest else None
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, train=True, sizes=sizes.to(device, non_blocking=True))
            elif channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            clock.tick()
            if clock.done:
                break
    return clock.images_per_s()


def model_limit(args, device: torch.device, clock: Clock, **precision) -> float:
    """Synthetic data already on the device; ``precision``: plain_loop's ``bf16`` and ``channels_last``."""
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 2, (args.batch_size,), device=device)
    return plain_loop(lambda: [(x, y)] * clock.total, device, clock, **precision)


def data_rate(batches, device: torch.device, clock: Clock, augment: DeviceAugment | None = None) -> float:
    """The data path alone: batches onto the device (and through DeviceAugment), no model."""
    clock.tick()
    while not clock.done:
        for x, _, *rest in batches:
            x = x.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, train=True, sizes=rest[0].to(device) if rest else None)
            clock.tick()
            if clock.done:
                break
    return clock.images_per_s()


def classifier(args, device: torch.device) -> AlexNetClassifier:
    """The plain loops' network and optimizer as the template's LightningModule."""
    model = AlexNetClassifier(
        model={},  # build_alexnet's defaults: the network of the plain loops (torchvision layout, fc head)
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.05, "fused": True},
        scheduler=None,
        class_names=CLASSES,
        image_size=args.image_size,
        in_channels=3,
        mean=MEAN,
        std=STD,
    )
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def lightning_fit(args, device: torch.device, datamodule: L.LightningDataModule, callbacks, **trainer_kw) -> None:
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **trainer_kw,
    )
    trainer.fit(classifier(args, device), datamodule=datamodule)


def default_rate(args, device: torch.device, cfg: DictConfig, datamodule: L.LightningDataModule, clock: Clock) -> float:
    """Lightning as ``python -m alexnet_lightning.train`` sets it up from ``cfg``: its trainer (precision,
    logging interval, checkpoint I/O), every default callback (progress bar, checkpoints, the learning
    watch, ...) and its logger, on the data module it builds; the network and optimizer of the other
    rows, and no validation (the rows compare training steps)."""
    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c and "_target_" in c]
    loggers = [hydra.utils.instantiate(c) for c in cfg.logger.values() if c and "_target_" in c]
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        accelerator=device.type,
        max_epochs=-1,
        max_steps=clock.total,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[*callbacks, ClockCallback(clock)],
        logger=loggers,
    )
    clock.tick()
    trainer.fit(classifier(args, device), datamodule=datamodule)
    return clock.images_per_s()


def template_rate(args, device, datamodule, clock: Clock) -> float:
    clock.tick()
    lightning_fit(args, device, datamodule, [ClockCallback(clock)], max_steps=clock.total)
    return clock.images_per_s()


def epoch_comparison(args, device, folder: Path, cache_dir: Path) -> tuple[float, float]:
    """First epoch = file check + cache build + training, second = training only (fresh cache directory)."""
    times = EpochTimes()
    start = time.perf_counter()
    lightning_fit(args, device, template_datamodule(args, folder, cache_dir, "cache"), [times], max_epochs=2)
    return times.ends[0] - start, times.ends[1] - times.ends[0]
