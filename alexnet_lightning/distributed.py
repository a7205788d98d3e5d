"""DDP under Hydra: Lightning's extra processes must rerun *this* job, in *its* directory.

Lightning starts ranks 1..N-1 by rerunning the command line with ``hydra.run.dir`` set to the
unresolved ``run.dir`` pattern. Under ``-m`` that reruns the whole sweep in every child (the hang of
lightning-hydra-template #194), and a ``${now:...}`` run directory resolves to a new folder a second
later (the extra run directories of #393). Rewriting the command line to this job's own overrides and
pinning ``run.dir`` to the job's output directory makes every child join the job it belongs to.

On several nodes torchrun or srun start every process, Lightning none: each one runs Hydra itself,
and all but global rank 0 are told before Hydra starts to leave the run's files to rank 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.fabric.plugins.environments import TorchElasticEnvironment
from lightning.fabric.plugins.environments.slurm import _is_srun_used
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


def launched_rank() -> int:
    """The global rank torchrun or srun gave this process, read as Lightning's cluster environments read it; else 0.

    0 also for the processes Lightning starts itself: they are pinned by ``pin_ddp_children_to_this_job``.
    """
    if TorchElasticEnvironment.detect():
        return int(os.environ["RANK"])
    if _is_srun_used():  # SLURM_NTASKS set and the job not named bash/interactive: Lightning's SLURMEnvironment
        return int(os.environ["SLURM_PROCID"])
    return 0


def leave_run_files_to_rank_zero() -> None:
    """Before Hydra starts: a process of rank > 0 that torchrun or srun started creates and writes nothing.

    Hydra would give it a run directory of its own (on its node, or a second later under the default
    ``${now:...}`` pattern) with ``.hydra/`` and ``train.log``, or write them into rank 0's. It points
    Hydra at the working directory instead (which exists), saves no config and logs to the console
    only; checkpoints and logs are rank 0's, and Lightning broadcasts rank 0's checkpoint directory.
    """
    if launched_rank() != 0:
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
