"""DDP under Hydra: Lightning's extra processes must rerun *this* job, in *its* directory.

Lightning starts ranks 1..N-1 by rerunning the command line with ``hydra.run.dir`` set to the
unresolved ``run.dir`` pattern. Under ``-m`` that reruns the whole sweep in every child (the hang of
lightning-hydra-template #194), and a ``${now:...}`` run directory resolves to a new folder a second
later (the extra run directories of #393). Rewriting the command line to this job's own overrides and
pinning ``run.dir`` to the job's output directory makes every child join the job it belongs to.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import read_write

LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_job(trainer: L.Trainer) -> Iterator[None]:
    """Fit and test inside: DDP children join this job, and its process group ends with it.

    Lightning destroys the process group only at exit; the next job of a ``-m`` sweep would reuse it
    while its new children wait on a fresh one, and hang. Its launcher also leaves ``LOCAL_RANK``,
    ``WORLD_SIZE`` etc. in this process's environment, from which the next job's Trainer would
    conclude that someone else starts the processes, start none, and wait for them forever.
    """
    environment = dict(os.environ)
    pin_ddp_children_to_this_job(trainer)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name in LAUNCHER_VARIABLES:
            if name in environment:
                os.environ[name] = environment[name]
            else:
                os.environ.pop(name, None)


def pin_ddp_children_to_this_job(trainer: L.Trainer) -> None:
    """Before ``fit``: make the processes Lightning will launch rerun this job as a single run."""
    if not HydraConfig.initialized() or not isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        return
    hydra_cfg = HydraConfig.get()
    # a single run (not the sweep), logging to the console only: rank 0 owns the run's files
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, "hydra.mode=RUN", "hydra/job_logging=disabled"]
    with read_write(hydra_cfg):  # type: ignore[arg-type]  # HydraConfig.get() is a DictConfig typed as HydraConf
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
