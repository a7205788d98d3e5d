"""Load a trained classifier from its checkpoint alone: nothing in the file can run code or write.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers. A checkpoint from
``alexnet_lightning.train`` needs nothing else, so no extra globals are allowlisted: a file that
names any other class or function is refused. Its hyperparameters are then checked by
alexnet_lightning.hparams (plain values, known keys, sane sizes) and nothing named in them is
instantiated: the network is always build_alexnet, the optimizer and scheduler torch classes.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from alexnet_lightning.errors import UserError
from alexnet_lightning.hparams import HParamError, plain_hparams
from alexnet_lightning.module import AlexNetClassifier


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's contents with plain, checked hyperparameters, or a one-line UserError for a
    missing, corrupt or unsafe file."""
    if path is None or str(path) in ("", "???"):
        raise UserError("no checkpoint given: pass ckpt_path=outputs/train/DATE/TIME/checkpoints/best.ckpt")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: pass ckpt_path= a .ckpt file written by training")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        if not re.search(r"GLOBAL|Unsupported global|Unsupported class|reduce", message):
            raise UserError(f"checkpoint {path} is not a readable PyTorch file (unexpected pickle data)") from None
        culprit = re.search(r"GLOBAL (\S+)", message)
        raise UserError(
            f"checkpoint {path} carries pickled code or objects{f' ({culprit[1]})' if culprit else ''}: "
            "refused to load it; use a checkpoint written by alexnet_lightning.train"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise UserError(f"checkpoint {path} is not a readable PyTorch file ({reason}): was it truncated?") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} has no state_dict: use a .ckpt file written by alexnet_lightning.train")
    if "hyper_parameters" not in checkpoint:
        raise UserError(f"checkpoint {path} has no hyper_parameters: it was not written by alexnet_lightning.train")
    if not isinstance(checkpoint["hyper_parameters"], dict):
        kind = type(checkpoint["hyper_parameters"]).__name__
        raise UserError(f"checkpoint {path}: hyper_parameters is a {kind}, not a mapping: refused")
    try:
        checkpoint["hyper_parameters"] = plain_hparams(checkpoint["hyper_parameters"])
    except HParamError as e:
        raise UserError(f"checkpoint {path}: hyper_parameters.{e}: refused") from None
    return checkpoint


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> AlexNetClassifier:
    """Rebuild the classifier from the checkpoint's hyperparameters and weights, in eval mode."""
    checkpoint = read_checkpoint(path, map_location)
    hparams = checkpoint["hyper_parameters"]
    if hparams["model"].get("pretrained"):  # the weights come from the checkpoint: never read pretrained ones again
        hparams["model"] = {**hparams["model"], "pretrained": False}
    try:
        model = AlexNetClassifier(**hparams)
    except UserError as e:
        raise UserError(f"checkpoint {path}: {e}") from None
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise UserError(f"checkpoint {path} does not match its own model config: {str(e).splitlines()[0]}") from None
    return model.to(map_location).eval()
