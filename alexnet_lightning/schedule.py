"""Learning-rate schedules sized by the run follow the run, also when it is resumed with more epochs.

``T_max: null`` (cosine) and ``total_steps: null`` (one-cycle) mean "this run's length". Lightning
restores a resumed run's scheduler as it was saved, sized for the old run: resumed with a larger
``trainer.max_epochs``, a cosine that ended at the old length would train the added epochs at a
learning rate near 0. ``fit_schedule_to_run`` resizes them at train start, after the restore; a
fresh run's schedulers already fit and are left alone. StepLR needs nothing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR

log = logging.getLogger(__name__)


def fit_schedule_to_run(trainer: L.Trainer, cfg: dict[str, Any] | None) -> None:
    """Resize the trainer's run-sized schedulers (per the scheduler config ``cfg``) to its max_epochs."""
    cfg = cfg or {}
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if isinstance(scheduler, CosineAnnealingLR) and cfg.get("T_max", 0) is None:
            t_max = max(1, trainer.max_epochs or 1)
            if scheduler.T_max != t_max:
                resize_cosine(scheduler, t_max)
        elif isinstance(scheduler, OneCycleLR) and cfg.get("total_steps", 0) is None:
            total = int(trainer.estimated_stepping_batches)
            if scheduler.total_steps != total:
                resize_one_cycle(scheduler, total, float(cfg.get("pct_start", 0.3)), bool(cfg.get("three_phase")))


def resize_cosine(scheduler: CosineAnnealingLR, t_max: int) -> None:
    """New ``T_max``; the learning rates become the closed form at the current epoch.

    CosineAnnealingLR's step() is recursive (each rate follows from the previous one), so it continues
    the new curve only from a rate that lies on it.
    """
    old_t_max, old_lr = scheduler.T_max, scheduler.get_last_lr()[0]
    scheduler.T_max = t_max
    cosine = (1 + math.cos(math.pi * scheduler.last_epoch / t_max)) / 2
    scheduler._last_lr = [scheduler.eta_min + (base - scheduler.eta_min) * cosine for base in scheduler.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, scheduler._last_lr, strict=True):
        group["lr"] = lr
    log.info(
        "cosine schedule resized to this run: T_max %d -> %d, learning rate at epoch %d %.3g -> %.3g",
        old_t_max,
        t_max,
        scheduler.last_epoch,
        old_lr,
        scheduler.get_last_lr()[0],
    )


def resize_one_cycle(scheduler: OneCycleLR, total: int, pct_start: float, three_phase: bool) -> None:
    """Rebuild OneCycleLR's phases for ``total`` steps, as a fresh run of that length would have them.

    Its learning rate and momentum are a closed form of the step number, so the next steps follow the
    new phases; the current step's values are recomputed on them (a jump where the phase changes).
    """
    if scheduler.last_epoch >= total:
        log.warning("one-cycle schedule: %d steps done, this run has %d: left as it was", scheduler.last_epoch, total)
        return
    warmup = pct_start * total
    ends = [warmup - 1, 2 * warmup - 2, total - 1] if three_phase else [warmup - 1, total - 1]
    for phase, end in zip(scheduler._schedule_phases, ends, strict=True):
        phase["end_step"] = float(end)
    old_total, scheduler.total_steps = scheduler.total_steps, total
    scheduler.last_epoch -= 1
    scheduler.step()  # the current step again, on the new phases
    log.info(
        "one-cycle schedule resized to this run: total_steps %d -> %d at step %d",
        old_total,
        total,
        scheduler.last_epoch,
    )
