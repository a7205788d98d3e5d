"""The template from Python (a notebook, another script): train, evaluate, export, and load a classifier.

    from alexnet_lightning import evaluate, export, load, train

    result = train(["trainer.max_epochs=3"])                 # the overrides of the command line
    classifier = load(result.best_checkpoint)
    table = classifier.predict("outputs/samples/digits")     # a pandas DataFrame, as predictions.csv
    evaluate(result.best_checkpoint)["test/acc"]
    export(result.best_checkpoint, format="onnx")            # the path of model.onnx

Each function composes its command's Hydra config (``conf/<command>.yaml``) with the overrides a
command line would take and runs the command's own function on it, so ``train([...])`` and ``python -m
alexnet_lightning.train ...`` do the same and write the same files into a run directory, by default
the command's ``outputs/<command>/DATE/TIME`` under the current directory. Hydra's own ``.hydra/``
folder and log file are the command line's. Bad input raises ``UserError`` with one line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image
from torch import nn

from alexnet_lightning.config import compose_config
from alexnet_lightning.data.decode import ImageSource
from alexnet_lightning.errors import UserError, find_user_error
from alexnet_lightning.eval import evaluate as evaluate_command
from alexnet_lightning.export import export as export_command
from alexnet_lightning.inference import Predictor, find_inputs, predict_files
from alexnet_lightning.predict import COLUMNS, prediction_rows
from alexnet_lightning.train import run_recorded

T = TypeVar("T")
Inputs = str | Path | Image.Image | Sequence[str | Path | Image.Image]


def _user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Raise the UserError behind an error (Hydra's instantiate wraps them) as itself: one line, not a chain."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            user_error = find_user_error(e)
            if user_error is None or user_error is e:
                raise
            raise user_error from None

    return wrapper


def _compose(config_name: str, output_dir: str | Path | None, overrides: Sequence[str] | None) -> DictConfig:
    """The command's config; a bad override is a UserError, and a default run directory is a new one."""
    if isinstance(overrides, str):
        raise UserError(f"overrides={overrides!r} is one string: pass a list of them, e.g. [{overrides!r}]")
    try:
        cfg = compose_config(config_name, output_dir, list(overrides or ()))
        if output_dir is None and Path(cfg.paths.output_dir).exists():
            time.sleep(1.0 - time.time() % 1.0)  # Hydra names run directories by the second: not an earlier run's
            cfg = compose_config(config_name, output_dir, list(overrides or ()))
    except (HydraException, OmegaConfBaseException) as e:  # Hydra's message, without its search path
        raise UserError(" ".join(str(e).split("Config search path:")[0].split())) from None
    return cfg


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns: the run's final metrics and where its files are."""

    metrics: dict[str, Any]  # as in the run's metrics.json: val/acc_best, test/acc, epochs, ... (warnings, if any)
    output_dir: Path  # the run directory: checkpoints/, metrics.json, tensorboard/, curves.png, ...
    best_checkpoint: Path | None  # checkpoints/best.ckpt; None when the run saved none (e.g. debug=default)


@_user_errors
def train(overrides: Sequence[str] | None = None, output_dir: str | Path | None = None) -> TrainResult:
    """Train as ``python -m alexnet_lightning.train OVERRIDES`` does, and say how it went.

    ``overrides`` are the command line's (``["dataset=imagefolder", "data_dir=~/photos"]``); the run
    writes into ``output_dir``, by default the command's ``outputs/train/DATE/TIME`` (then also linked
    as ``outputs/train/latest``).

    Example::

        result = train(["trainer.max_epochs=3"])
        print(result.metrics["test/acc"], result.best_checkpoint)
    """
    cfg = _compose("config", output_dir, overrides)
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default=""))
    if strategy.startswith("ddp") and not any(s in strategy for s in ("spawn", "fork", "notebook")):
        raise UserError(
            f"trainer.strategy={strategy} starts its processes by rerunning the command line: "
            "run python -m alexnet_lightning.train with these overrides, or use trainer.strategy=ddp_spawn"
        )
    metrics = run_recorded(cfg).metrics
    best = OmegaConf.select(cfg, "callbacks.model_checkpoint")
    best_path = Path(best.dirpath) / f"{best.filename}.ckpt" if best else None
    return TrainResult(metrics, Path(cfg.paths.output_dir), best_path if best_path and best_path.is_file() else None)


@_user_errors
def evaluate(
    checkpoint: str | Path, overrides: Sequence[str] | None = None, output_dir: str | Path | None = None
) -> dict[str, float]:
    """Evaluate as ``python -m alexnet_lightning.eval ckpt_path=CHECKPOINT OVERRIDES`` does; return its metrics.

    By default on the test split of the images the checkpoint was trained on; ``overrides`` as for the
    command (``["split=val"]``, ``["dataset=imagefolder", "data_dir=~/other"]``). The report, confusion
    matrix and top losses go into ``output_dir`` (default ``outputs/eval/DATE/TIME``).

    Example::

        metrics = evaluate("outputs/train/latest/checkpoints/best.ckpt")
        print(metrics["test/acc"], metrics["speed/batch1/images_per_s"])
    """
    cfg = _compose("eval", output_dir, overrides)
    cfg.ckpt_path = str(checkpoint)
    return evaluate_command(cfg)


@_user_errors
def export(
    checkpoint: str | Path,
    format: str | None = None,
    inputs: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
) -> Path:
    """Export as ``python -m alexnet_lightning.export`` does; return the exported file's path.

    ``format``: ``onnx`` (the default) or ``torch_export``; ``inputs``: real images (a file, a folder or
    a glob) to check the export on besides random ones. The file and its ``metadata.json`` go into
    ``output_dir`` (default ``outputs/export/DATE/TIME``).

    Example::

        onnx_file = export("outputs/train/latest/checkpoints/best.ckpt", format="onnx")
    """
    cfg = _compose("export", output_dir, overrides)
    cfg.ckpt_path = str(checkpoint)
    if format is not None:
        cfg.format = format
    if inputs is not None:
        cfg.inputs = str(inputs)
    return Path(export_command(cfg)["path"])


class Classifier:
    """A checkpoint's network with the preprocessing it was trained with: ``predict``, ``classes``, ``model``.

    ``predictor`` is the ``alexnet_lightning.inference.Predictor`` underneath (``preprocess``,
    ``probabilities``, ``top_k``, ``mean``/``std``), for what ``predict`` does not cover.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the network's outputs."""
        return self.predictor.class_names

    @property
    def model(self) -> nn.Module:
        """The network, in eval mode: a normalized N x C x H x W batch in, logits out."""
        return self.predictor.model.net

    @_user_errors
    def predict(self, inputs: Inputs, top_k: int = 5, batch_size: int = 64) -> pd.DataFrame:
        """The predicted class of each image: one row per image, the columns of ``predictions.csv``.

        ``inputs``: an image file, a folder (its images, recursively), a glob (``"photos/*.jpg"``), a PIL
        image, or a list of files and PIL images. Columns: ``path``, ``predicted``, ``probability``,
        ``top_k`` (the ``top_k`` most likely (class, probability) pairs), ``true`` and ``correct`` (when a
        folder or file name names the class: ``cats/1.jpg``, ``cat.1.jpg``), ``error`` (why an image could
        not be read; empty when it could). A value that does not exist (the path of a PIL image, the
        prediction for an unreadable file) is missing, as ``pandas.isna`` tells.

        Example::

            table = load("best.ckpt").predict(["photos/cat.1.jpg", "photos/dog.7.jpg"])
            print(table[["path", "predicted", "probability"]])
        """
        if top_k < 1 or batch_size < 1:
            raise UserError(f"top_k={top_k} and batch_size={batch_size} must both be whole numbers >= 1")
        sources = _sources(inputs)
        probs, errors, _ = predict_files(self.predictor, sources, batch_size)
        return pd.DataFrame(prediction_rows(self.predictor, sources, probs, errors, top_k), columns=list(COLUMNS))

    def __repr__(self) -> str:
        p = self.predictor
        return f"Classifier({len(p.class_names)} classes, input {'x'.join(map(str, p.input_shape))}, {p.ckpt_path})"


def _sources(inputs: Inputs) -> list[ImageSource]:
    """Files (a folder or glob expanded) and PIL images, in the order given."""
    items = [inputs] if isinstance(inputs, (str, Path, Image.Image)) else inputs
    if not isinstance(items, Sequence) or not items:
        raise UserError(
            f"inputs={inputs!r} is not an image: pass a file, a folder, a glob, a PIL image or a list of them"
        )
    sources: list[ImageSource] = []
    for item in items:
        if isinstance(item, Image.Image):
            sources.append(item)
        elif isinstance(item, (str, Path)):
            sources.extend(find_inputs(str(item)))
        else:
            raise UserError(f"inputs holds a {type(item).__name__}: pass files, folders, globs or PIL images")
    return sources


@_user_errors
def load(checkpoint: str | Path, device: str = "auto") -> Classifier:
    """The classifier a checkpoint holds, ready to predict (``device``: ``auto``, the GPU when there is one).

    Loading is the commands' (``torch.load(weights_only=True)`` and the hyperparameters' allow-list):
    a file that is not a checkpoint of this template is refused in one line.

    Example::

        classifier = load("outputs/train/latest/checkpoints/best.ckpt")
        print(classifier.classes, classifier.predict("outputs/samples/digits/7"))
    """
    return Classifier(Predictor.load(checkpoint, device))
