"""MLflow and Weights & Biases (``logger=mlflow|wandb|many``): their packages, and what a run tells them at the end.

Lightning's loggers send the metrics and the hyperparameters. What they cannot know is where the run left
its model: at the end the checkpoints' paths (never a copy of the weights) and ``curves.png`` go too, so a
tracker's run page leads back to the files.
"""

from __future__ import annotations

import importlib
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from omegaconf import DictConfig

from alexnet_lightning.errors import UserError

INSTALL = "pip install 'alexnet-lightning[trackers]'"
# the logger class -> the module it imports, and the name a user knows it by
PACKAGES = {"MLFlowLogger": ("mlflow", "MLflow"), "WandbLogger": ("wandb", "Weights & Biases (wandb)")}


def _logger_classes(loggers: DictConfig | None) -> Iterator[tuple[str, DictConfig, str]]:
    """(key, config, class name) of each configured logger, e.g. ("mlflow", {...}, "MLFlowLogger")."""
    for key, conf in (loggers or {}).items():
        if conf:
            yield str(key), conf, str(conf.get("_target_", "")).rsplit(".", 1)[-1]


def require_packages(loggers: DictConfig | None) -> None:
    """One line naming the extra when a configured logger's package is missing, instead of Lightning's traceback."""
    for key, _, class_name in _logger_classes(loggers):
        found = PACKAGES.get(class_name)
        if found is None:
            continue
        module, name = found
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(f"logger.{key} needs {name}, which is not installed: {INSTALL}") from None


def require_servers(loggers: DictConfig | None, timeout: float = 5.0) -> None:
    """One line when an MLflow server named by ``tracking_uri`` does not answer, before the data is read.

    MLflow itself retries for minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT) and
    then fails inside Lightning. Any HTTP answer, even an error status, means a server is there.
    """
    for key, conf, class_name in _logger_classes(loggers):
        uri = str(conf.get("tracking_uri") or "") if class_name == "MLFlowLogger" else ""
        if not uri.startswith(("http://", "https://")):
            continue
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass
        except (OSError, ValueError) as e:  # refused, unknown host, timeout, a malformed URL
            reason = getattr(e, "reason", e)
            raise UserError(
                f"logger.{key}.tracking_uri={uri} does not answer ({reason}): start the server "
                "(mlflow server --host HOST --port PORT) or leave tracking_uri out for a store in the run folder"
            ) from None


def checkpoint_paths(trainer: L.Trainer) -> dict[str, str]:
    """``best_checkpoint`` and ``last_checkpoint``: the absolute paths of the files the run's callbacks wrote."""
    found = {}
    for cb in trainer.checkpoint_callbacks:
        if not isinstance(cb, ModelCheckpoint):
            continue
        last = cb.last_model_path or cb.best_model_path  # a callback without a monitor: its one file is the last
        key, path = ("best_checkpoint", cb.best_model_path) if cb.monitor else ("last_checkpoint", last)
        if path and Path(path).is_file():
            found[key] = str(Path(path).resolve())
    return found


def log_run_files(trainer: L.Trainer, run_dir: Path) -> None:
    """Where the checkpoints and the run folder are (MLflow tags, W&B summary), and ``curves.png`` (rank zero)."""
    paths = {**checkpoint_paths(trainer), "run_dir": str(run_dir.resolve())}
    curves = run_dir / "curves.png"
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            for key, value in paths.items():
                logger.experiment.set_tag(logger.run_id, key, value)
            if curves.is_file():
                logger.experiment.log_artifact(logger.run_id, str(curves))
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary.update(paths)
            if curves.is_file():
                logger.log_image("curves", [str(curves)])


@contextmanager
def tracking(loggers: list[Logger]) -> Iterator[None]:
    """Around fit and test: an MLflow store that fails says so in one line, and the W&B run ends with this run.

    Lightning leaves the W&B run open, and the next run of a ``-m`` sweep in this process would log into it.
    """
    failed = True
    try:
        yield
        failed = False
    except Exception as e:
        if any(isinstance(logger, MLFlowLogger) for logger in loggers):
            from mlflow.exceptions import MlflowException

            if isinstance(e, MlflowException):
                raise UserError(
                    f"MLflow failed: {_reason(e)}; check logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI), "
                    "and that its server runs"
                ) from e
        raise
    finally:
        if any(isinstance(logger, WandbLogger) for logger in loggers):
            import wandb

            if wandb.run is not None:
                wandb.run.finish(exit_code=1 if failed else 0)


def _reason(e: BaseException) -> str:
    """MLflow's first line, shortened, and the error under it (e.g. ``ConnectionRefusedError``) that says why."""
    root = e
    while (inner := root.__cause__ or root.__context__) is not None:
        root = inner
    reason = textwrap.shorten(str(e).splitlines()[0], 160, placeholder=" ...")
    return reason if root is e else f"{reason} ({type(root).__name__}: {root})"
