"""Train (and test) an AlexNet classifier: compose the config, instantiate, fit, test, report.

python -m alexnet_lightning.train dataset=catsdogs data_dir=~/data/dogs-vs-cats/train
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from alexnet_lightning import resolvers
from alexnet_lightning.config import check_config
from alexnet_lightning.console import print_config_tree
from alexnet_lightning.distributed import ddp_job
from alexnet_lightning.errors import exit_on_user_error
from alexnet_lightning.module import AlexNetClassifier
from alexnet_lightning.sweep import record_run
from alexnet_lightning.tune import tune

resolvers.register()


def _plain(cfg: DictConfig | None) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def _instantiate_all(cfg: DictConfig | None) -> list[Any]:
    return [hydra.utils.instantiate(c) for c in (cfg or {}).values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment and return its final metrics (the sweepers' objective among them)."""
    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    rank_zero = rank_zero_only.rank == 0  # DDP's other ranks share rank 0's run directory and write nothing
    if rank_zero:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    if rank_zero:
        datamodule.write_run_files(out)

    model = AlexNetClassifier(
        model=_plain(cfg.model),
        optimizer=_plain(cfg.optimizer),
        scheduler=_plain(cfg.scheduler),
        label_smoothing=cfg.label_smoothing,
        **datamodule.describe(),
    )
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")), logger=loggers or False
    )
    for logger in trainer.loggers:
        logger.log_hyperparams({"tags": list(cfg.tags), "seed": cfg.seed})
    with ddp_job(trainer):
        if cfg.train:
            if not cfg.ckpt_path:
                tune(trainer, model, datamodule, cfg.tune, out)
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics["epochs"] = trainer.current_epoch
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            ckpt = best or (cfg.ckpt_path if not cfg.train else None)
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            if "test/acc" in metrics and rank_zero:
                print(f"test/acc: {metrics['test/acc']:.4f}  (run directory: {out})")
    metrics["objective"] = metrics.get(cfg.optimized_metric, float("nan"))
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    if rank_zero_only.rank == 0:
        print_config_tree(cfg)
    with record_run(cfg) as record:
        record.metrics = train(cfg)
    return record.objective


if __name__ == "__main__":
    main()
