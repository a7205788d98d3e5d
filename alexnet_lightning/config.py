"""Compose a command's config outside its Hydra main: for notebooks and tests.

``python -m alexnet_lightning.<command>`` gets its config from ``@hydra.main``; code that calls
``train(cfg)`` or ``evaluate(cfg)`` directly gets the same config from here, with the run
directory given instead of Hydra's ``outputs/<command>/DATE/TIME``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from alexnet_lightning import resolvers
from alexnet_lightning.errors import UserError

CONF_DIR = Path(__file__).resolve().parent / "conf"
_ABSENT = object()


def compose_config(config_name: str, output_dir: str | Path | None, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m alexnet_lightning.<config_name> OVERRIDES`` would run with, writing into output_dir.

    ``output_dir`` None: the command's own run directory (``hydra.run.dir``: ``outputs/<command>/DATE/TIME``
    under the current directory, the time being now).
    """
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if output_dir is None:
            output_dir = Path(cfg.hydra.run.dir).absolute()
        del cfg["hydra"]  # as in a real run, where the hydra node is not part of the job's config
        cfg.paths.output_dir = str(output_dir)
    GlobalHydra.instance().clear()
    return cfg


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(minimum: int, *also: Any) -> Callable[[Any], bool]:
    return lambda v: v in also or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum)


def _fraction(upper_open: bool) -> Callable[[Any], bool]:
    return lambda v: _number(v) and (0 <= v < 1 if upper_open else 0 <= v <= 1)


def _positive(v: Any) -> bool:
    return _number(v) and v > 0


def _devices(v: Any) -> bool:
    if isinstance(v, str):  # Lightning's "auto", "-1", "2" or "0,1"
        parts = [p.strip() for p in v.split(",") if p.strip()]
        return (
            v == "auto" or v.strip() == "-1" or (bool(parts) and all(p.isdigit() for p in parts) and v.strip() != "0")
        )
    if isinstance(v, (list, tuple, ListConfig)):
        return len(v) > 0 and all(_whole(0)(d) for d in v)
    return _whole(1, -1)(v)


# key: (is the value valid, what it must be). Keys a config lacks are not checked.
CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trainer.max_epochs": (_whole(1, -1, None, "auto"), "a whole number >= 1 (or -1 for no limit, or auto)"),
    "trainer.devices": (_devices, "a number of devices >= 1, -1 (all), auto, or a list of device indices"),
    "data.batch_size": (_whole(1), "a whole number >= 1"),
    "data.image_size": (_whole(1, "auto"), "a whole number of pixels >= 1 (or auto)"),
    "data.cache_size": (_whole(1, "auto"), "a whole number of pixels >= 1 (or auto)"),
    "data.num_workers": (_whole(0, "auto"), "a whole number >= 0 (0: load in the main process), or auto"),
    "data.val_fraction": (_fraction(upper_open=True), "a fraction in [0, 1)"),
    "data.test_fraction": (_fraction(upper_open=True), "a fraction in [0, 1)"),
    "data.crop_fraction": (lambda v: _positive(v) and v <= 1, "a fraction in (0, 1], e.g. 0.875 (256 -> 224 px)"),
    "model.in_channels": (lambda v: v in (1, 3, "auto") and not isinstance(v, bool), "1, 3 or auto"),
    "optimizer.lr": (_positive, "a number > 0"),
    "optimizer.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "label_smoothing": (_fraction(upper_open=True), "a number in [0, 1)"),
    "batch_size": (_whole(1), "a whole number >= 1"),  # predict
    "num_workers": (_whole(0, "auto"), "a whole number >= 0, or auto"),  # predict, eval, explain
}


def check_config(cfg: DictConfig) -> None:
    """Stop with one line naming the key when a value has the wrong type or lies out of range.

    Called at the start of a command, before anything is built: a typo fails in a second, not after
    the data set was scanned (or, for ``trainer.max_epochs=abc``, deep inside Lightning).
    """
    for key, (valid, what) in CONFIG_RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)  # also for a ??? value
        if value is not _ABSENT and not valid(value):
            raise UserError(f"{key}={value!r} is invalid: it must be {what}")
    val, test = (OmegaConf.select(cfg, f"data.{k}", default=0.0) for k in ("val_fraction", "test_fraction"))
    if val + test >= 1:
        raise UserError(
            f"data.val_fraction={val} + data.test_fraction={test} leave no training images: their sum must be below 1"
        )
    _check_gpus(cfg)


def _check_gpus(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without (enough) GPUs: one line, not Lightning's traceback after set-up."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if accelerator not in ("gpu", "cuda"):
        return
    if not torch.cuda.is_available():
        if accelerator == "gpu" and torch.backends.mps.is_available():  # Lightning's "gpu" on Apple silicon
            return
        simulate = " (trainer=ddp_sim simulates DDP on the CPU)" if "ddp" in str(cfg.trainer.get("strategy")) else ""
        raise UserError(
            f"trainer.accelerator={accelerator} needs a GPU, but no CUDA GPU is visible: "
            f"use trainer=default (it takes a GPU when there is one) or trainer=cpu{simulate}"
        )
    devices, visible = cfg.trainer.get("devices"), torch.cuda.device_count()
    if isinstance(devices, str) and "," in devices:  # Lightning's "0,1": device indices
        devices = [int(d) for d in devices.split(",") if d.strip()]
    elif isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > visible:
        raise UserError(
            f"trainer.devices={devices} asks for {devices} GPUs, but this machine shows {visible}: "
            f"use trainer.devices={visible} or -1 (all)"
        )
    if isinstance(devices, (list, ListConfig)) and max(devices, default=0) >= visible:
        raise UserError(
            f"trainer.devices={list(devices)} names GPU {max(devices)}, but only GPUs 0 to {visible - 1} are visible: "
            "use indices below that, or trainer.devices=-1 (all)"
        )
