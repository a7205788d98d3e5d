"""Compose a command's config outside its Hydra main: for notebooks and tests.

``python -m alexnet_lightning.<command>`` gets its config from ``@hydra.main``; code that calls
``train(cfg)`` or ``evaluate(cfg)`` directly gets the same config from here, with the run
directory given instead of Hydra's ``outputs/DATE/TIME``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from alexnet_lightning import resolvers

CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(config_name: str, output_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m alexnet_lightning.<config_name> OVERRIDES`` would run with, writing into output_dir."""
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run, where the hydra node is not part of the job's config
        cfg.paths.output_dir = str(output_dir)
    GlobalHydra.instance().clear()
    return cfg
