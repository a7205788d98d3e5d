"""Config resolvers that depend on the machine a run starts on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import OmegaConf


def mixed_precision_on_gpu(precision: str) -> str:
    """``${on_gpu:16-mixed}``: mixed precision where a GPU is present, full precision on a CPU.

    Recipes that want mixed precision stay runnable on a laptop without a GPU.
    """
    return precision if torch.cuda.is_available() else "32-true"


def cuda_available() -> bool:
    """``${cuda:}``: true where a CUDA GPU is present, e.g. for the optimizers' single-kernel ``fused`` step."""
    return torch.cuda.is_available()


def device_count(devices: Any) -> int:
    """How many devices Lightning's ``trainer.devices`` means: a number, -1 or auto (every visible CUDA GPU,
    1 without one), a list of indices or their text form ``"0,1"``."""
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", "-1"):
            return max(1, torch.cuda.device_count())
        return int(devices) if devices.isdigit() else len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, Sequence):
        return len(devices)
    return max(1, torch.cuda.device_count()) if devices == -1 else int(devices)


def linear_lr(lr: float, per: int, batch_size: int, devices: Any, num_nodes: int = 1, accumulate: int = 1) -> float:
    """``${linear_lr:0.01,256,...}``: the linear scaling rule (Goyal et al., 2017) for a recipe stated per batch.

    A recipe's ``lr`` is for a global batch of ``per`` images; a run's global batch is
    batch_size x devices x num_nodes x accumulate_grad_batches images per optimizer step, and its
    learning rate grows or shrinks in proportion, so the same recipe holds on 1 GPU or 64.
    """
    return float(lr) * batch_size * device_count(devices) * num_nodes * accumulate / per


def register() -> None:
    OmegaConf.register_new_resolver("on_gpu", mixed_precision_on_gpu, replace=True)
    OmegaConf.register_new_resolver("cuda", cuda_available, replace=True)
    OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
