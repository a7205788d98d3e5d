"""Train (and test) an AlexNet classifier: compose the config, instantiate, fit, test, report.

python -m alexnet_lightning.train dataset=catsdogs data_dir=~/data/dogs-vs-cats/train
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from alexnet_lightning import resolvers, sizing, trackers
from alexnet_lightning.command import hydra_command
from alexnet_lightning.config import check_config
from alexnet_lightning.console import describe_checkpoints, print_config_tree, shown_path
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.distributed import ddp_job
from alexnet_lightning.module import AlexNetClassifier
from alexnet_lightning.sweep import RunRecord, drop_resume_checkpoint, record_run
from alexnet_lightning.tune import tune

resolvers.register()


def _plain(cfg: DictConfig | None) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def _instantiate_all(cfg: DictConfig | None) -> list[Any]:
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment and return its final metrics (``record_run`` takes the sweepers' objective from them).

    ``warnings`` lists what the run said about itself (e.g. that it was not learning), when it said anything.
    """
    check_config(cfg)
    trackers.require_packages(cfg.get("logger"))  # before the data is read: a missing package says so at once
    trackers.require_servers(cfg.get("logger"))  # and a tracking server that does not answer
    out = Path(cfg.paths.output_dir)
    # DDP's other ranks share rank 0's run directory and write nothing
    rank_zero = rank_zero_only.rank == 0  # type: ignore[attr-defined]  # Lightning sets the attribute at import
    L.seed_everything(cfg.seed, workers=True)

    smallest = sizing.network_minimum(cfg.model.layout, cfg.model.stem)  # where data.image_size=auto may stop
    datamodule: ImageDataModule = hydra.utils.instantiate(cfg.data, min_image_size=smallest)
    datamodule.setup("fit")
    choices = resolve_auto(cfg, datamodule)
    if rank_zero:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
        datamodule.write_run_files(out)
        if choices:
            print("chosen for this data: " + "; ".join(map(str, choices)) + ". Set any of them to override.")

    model = AlexNetClassifier(
        model=_plain(cfg.model),
        optimizer=_plain(cfg.optimizer),
        scheduler=_plain(cfg.scheduler),
        label_smoothing=cfg.label_smoothing,
        **datamodule.describe(),
    )
    loggers = _instantiate_all(cfg.get("logger"))
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not loggers:  # ~logger: Lightning's LearningRateMonitor refuses a trainer without one
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    with ddp_job(trainer), trackers.tracking(trainer.loggers):
        if cfg.train and not cfg.ckpt_path:
            tune(trainer, model, datamodule, cfg.tune, out)
        run_params = {  # beside the module's own hyperparameters: what else makes runs differ (after tuning)
            "tags": list(cfg.tags),
            "seed": cfg.seed,
            "augment": cfg.augment,
            "normalize": cfg.normalize,
            "batch_size": datamodule.batch_size,
            "max_epochs": trainer.max_epochs,
        }
        for logger in trainer.loggers:
            logger.log_hyperparams(run_params)
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics["epochs"] = trainer.current_epoch
        if cfg.test:
            best = getattr(trainer.checkpoint_callback, "best_model_path", "")  # None, or a Checkpoint with no file
            ckpt = best or (cfg.ckpt_path if not cfg.train else None)
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if rank_zero:
            trackers.log_run_files(trainer, out)
    if rank_zero:  # the last lines of the run: where its checkpoints are, and how the best one tested
        if cfg.train and (saved := describe_checkpoints(trainer)):
            print(saved)
            link_latest(out)
        if "test/acc" in metrics:
            print(f"test/acc: {metrics['test/acc']:.4f}  (run directory: {shown_path(out)})")
    warnings = [w for cb in trainer.callbacks for w in getattr(cb, "warnings", [])]  # type: ignore[attr-defined]  # set by Lightning, undeclared
    if warnings:
        metrics["warnings"] = warnings
    return metrics


def link_latest(out: Path) -> None:
    """Point ``outputs/train/latest`` at this run (``outputs/train/DATE/TIME``), so its files have a fixed path.

    Only for runs in Hydra's default place (not sweeps, not an explicit hydra.run.dir elsewhere); the
    link is replaced atomically and only ever names a run directory, never a user's file.
    """
    root = out.parent.parent
    if not (re.fullmatch(r"\d{4}-\d{2}-\d{2}", out.parent.name) and re.fullmatch(r"\d{2}-\d{2}-\d{2}", out.name)):
        return
    latest = root / "latest"
    if latest.exists() and not latest.is_symlink():
        return
    partial = root / f".latest.{os.getpid()}"
    partial.unlink(missing_ok=True)
    partial.symlink_to(Path(out.parent.name) / out.name, target_is_directory=True)
    os.replace(partial, latest)


def resolve_auto(cfg: DictConfig, datamodule: Any) -> list[sizing.Choice]:
    """Write the values chosen for ``auto`` settings into ``cfg`` (so the run's config and checkpoint hold numbers)."""
    choices = list(getattr(datamodule, "choices", []))
    with open_dict(cfg):
        cfg.data.image_size, cfg.model.in_channels = datamodule.image_size, datamodule.channels
        cfg.data.num_workers, cfg.data.pipeline = datamodule.num_workers, datamodule.pipeline
        if datamodule.pipeline == "cache":
            cfg.data.cache_size = datamodule.cache_size
        if sizing.is_auto(cfg.model.stem):
            choices.append(sizing.stem(cfg.model.layout, datamodule.image_size))
            cfg.model.stem = choices[-1].value
        if sizing.is_auto(cfg.trainer.max_epochs):
            auto = cfg.auto_epochs
            choices.append(sizing.epochs(len(datamodule.splits["train"]), auto.images, auto.min, auto.max))
            cfg.trainer.max_epochs = choices[-1].value
    return choices


def run_recorded(cfg: DictConfig) -> RunRecord:
    """One training run as the command runs it: the config printed, ``metrics.json`` written (also on failure).

    The command and the Python API (``alexnet_lightning.api.train``) both run training through here.
    """
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # Lightning sets the attribute at import
        print_config_tree(cfg)
    with record_run(cfg) as record:
        record.metrics = train(cfg)
    if record.metrics:  # finished: a failed run keeps its last epoch, to look into
        drop_resume_checkpoint(cfg)
    return record


def run(cfg: DictConfig) -> float:
    """The command's job: one recorded run; Hydra's sweepers get its objective."""
    return run_recorded(cfg).objective


main = hydra_command("config", run)

if __name__ == "__main__":
    main()
