"""Config resolvers that depend on the machine a run starts on, or on where a tracker keeps its store."""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from omegaconf import OmegaConf

SQLITE = "sqlite:///"


def mixed_precision_on_gpu(precision: str, accelerator: str = "auto") -> str:
    """``${on_gpu:bf16-mixed}``: mixed precision where a CUDA GPU will train, full precision on a CPU.

    Recipes that want mixed precision stay runnable on a laptop without a GPU; the default trainer passes
    its ``accelerator`` too, so ``trainer.accelerator=cpu`` on a GPU machine stays in full precision.
    bf16 needs an Ampere or newer GPU: older ones (V100, T4) get fp16 with loss scaling instead.
    """
    if accelerator == "cpu" or not torch.cuda.is_available():
        return "32-true"
    if precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        return "16-mixed"
    return precision


def cuda_available() -> bool:
    """``${cuda:}``: true where a CUDA GPU is present, e.g. for the optimizers' single-kernel ``fused`` step."""
    return torch.cuda.is_available()


def wandb_mode() -> str:
    """``${wandb_mode:}``: ``WANDB_MODE`` when set, else ``online`` with W&B credentials and ``offline`` without.

    Without credentials W&B would ask for a key in a terminal (and fail outside one); offline it writes the
    run folder only, for ``wandb sync`` to upload later.
    """
    return os.environ.get("WANDB_MODE") or ("online" if _wandb_credentials() else "offline")


def _wandb_credentials() -> bool:
    """An API key (or identity token) in the environment, or the netrc entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, or one W&B could not read either
        return False
    return bool(entry and entry[2])


def mlflow_artifacts(tracking_uri: str | None) -> str | None:
    """``${mlflow_artifacts:${.tracking_uri}}``: ``artifacts/`` beside a local SQLite store, else None.

    MLflow fixes an experiment's artifact folder when it creates the experiment; left to itself with a
    SQLite store it picks ``./mlruns`` in the working directory. A server (or any other store) chooses its
    own, so an experiment shared by many runs never points into one run's folder.
    """
    if tracking_uri is None or not tracking_uri.startswith(SQLITE):
        return None
    return str(Path(tracking_uri.removeprefix(SQLITE)).parent / "artifacts")


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
    OmegaConf.register_new_resolver("wandb_mode", wandb_mode, replace=True)
    OmegaConf.register_new_resolver("mlflow_artifacts", mlflow_artifacts, replace=True)
    OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
