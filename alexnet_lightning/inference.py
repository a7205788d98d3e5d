"""Inference from a checkpoint alone: load, preprocess, batch, predict. eval, predict, export and serve use it.

The checkpoint says everything inference needs (class names, image size, channels, mean/std), so
a ``Predictor`` is built from the file and nothing else; commands only choose inputs and outputs.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.decode import BadImageError, ImageSource, decode, is_image_path
from alexnet_lightning.data.transforms import eval_transform
from alexnet_lightning.errors import UserError
from alexnet_lightning.module import AlexNetClassifier


def pick_device(device: str) -> torch.device:
    """``auto`` means the GPU when there is one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} but no CUDA GPU is visible: use device=cpu or device=auto")
    return torch.device(device)


class Predictor:
    """A classifier plus the preprocessing its checkpoint describes: bytes or files in, probabilities out."""

    def __init__(self, model: AlexNetClassifier, device: torch.device, ckpt_path: str | Path | None = None) -> None:
        hp = model.hparams
        self.ckpt_path = ckpt_path
        self.model, self.device = model.eval(), device
        self.class_names: list[str] = list(hp.class_names)
        self.channels: int = hp.in_channels
        self.image_size: int = hp.image_size
        self.mean, self.std = list(hp.mean), list(hp.std)
        self.crop_fraction: float = hp.crop_fraction
        self.transform = eval_transform(hp.image_size, hp.mean, hp.std, hp.crop_fraction)

    @classmethod
    def load(cls, ckpt_path: str | Path, device: str = "auto") -> Predictor:
        """The checkpoint's classifier on ``device`` (``auto``: the GPU when there is one), in eval mode."""
        torch_device = pick_device(device)
        return cls(load_classifier(ckpt_path, map_location=torch_device), torch_device, ckpt_path)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def preprocess(self, source: ImageSource) -> torch.Tensor:
        """A normalized CxHxW float tensor; raises BadImageError for what is not a usable image."""
        return self.transform(decode(source, self.channels))

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device, non_blocking=True)).float().softmax(dim=1).cpu()

    def top_k(self, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
        values, indices = probs.topk(min(k, len(self.class_names)))
        return [(self.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]

    def predict_loader(self, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and targets of every ``(images, targets)`` batch of a labelled loader, in order."""
        probs, targets = [], []
        for x, y in loader:
            probs.append(self.probabilities(x))
            targets.append(y)
        if not probs:
            raise UserError("the chosen split has no images: use split=val or a data set with more images")
        return torch.cat(probs), torch.cat(targets)


def checkpoint_datamodule(
    predictor: Predictor,
    data: DictConfig | None,
    data_dir: str | None = None,
    seed: int | None = None,
    cache_dir: str | None = None,
    num_workers: int | str = "auto",
) -> ImageDataModule:
    """The data set to evaluate or explain on, set up, with the checkpoint's size, channels and normalization.

    ``data`` is a dataset preset's config; None means the images the checkpoint was trained on, from
    its data record (``data_dir`` replaces the recorded folder when the images moved). ``seed`` None
    is the training run's, so the split is the training run's. The record names a source of
    data/sources.py by name; nothing in it is imported or instantiated. The classes must be the
    checkpoint's: a model is only evaluated or explained on the data it was trained for.
    """
    record = predictor.model.hparams.get("data")
    seed = seed if seed is not None else (record or {}).get("seed", 0)
    fixed: dict[str, Any] = {
        "image_size": predictor.image_size,
        "channels": predictor.channels,
        "mean": predictor.mean,
        "std": predictor.std,
        "crop_fraction": predictor.crop_fraction,
        "pipeline": "stream",  # the loaders' float batches go to the model directly, without a trainer
        "seed": seed,
        "num_workers": num_workers,
    }
    if data is not None:
        datamodule = hydra.utils.instantiate(data, **fixed)
    else:
        if not record:
            raise UserError(
                f"checkpoint {predictor.ckpt_path} does not record its data (written by an older version): "
                "pass dataset=PRESET data_dir=FOLDER and the training run's seed=N"
            )
        folder = data_dir or record["data_dir"]
        if folder is not None and not Path(folder).expanduser().is_dir():
            where = "given as data_dir" if data_dir else "recorded in the checkpoint"
            raise UserError(
                f"the {record['source']} images of this checkpoint are not in {folder} ({where}): "
                "pass data_dir=WHERE_THEY_ARE_NOW, or dataset=PRESET data_dir=FOLDER for other data"
            )
        datamodule = ImageDataModule(
            source=record["source"],
            data_dir=folder,
            options=record["options"],
            val_fraction=record["val_fraction"],
            test_fraction=record["test_fraction"],
            augment="none",
            cache_dir=cache_dir,
            **fixed,
        )
    datamodule.setup("test")
    if list(datamodule.classes) != predictor.class_names:
        raise UserError(
            f"the data set's classes {list(datamodule.classes)} differ from the checkpoint's {predictor.class_names}: "
            "use the data set the model was trained for"
        )
    return datamodule


def split_loader(datamodule: ImageDataModule, split: str) -> DataLoader:
    """The ``test`` or ``val`` loader of a checkpoint_datamodule, whose pipeline=stream makes it a plain DataLoader."""
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    assert isinstance(loader, DataLoader)
    return loader


def find_inputs(inputs: str) -> list[Path]:
    """Files named by an image path, a folder (its images, recursively) or a glob pattern."""
    if inputs in (None, "", "???"):
        raise UserError("no inputs given: pass inputs=IMAGE, inputs=FOLDER or inputs='photos/*.jpg'")
    path = Path(str(inputs)).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
        if not files:
            raise UserError(f"no images in {path} (looked for .jpg, .png, ... recursively)")
        return files
    if any(c in str(inputs) for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise UserError(f"no files match {inputs}")
        return files
    raise UserError(f"inputs={inputs} does not exist: pass an image, a folder or a glob pattern")


class ImageFiles(Dataset):
    """Preprocessed images (files, or PIL images); an unreadable one yields its reason instead of an exception."""

    def __init__(self, files: Sequence[ImageSource], predictor: Predictor) -> None:
        self.files, self.predictor = files, predictor

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return i, self.predictor.preprocess(self.files[i]), ""
        except BadImageError as e:
            return i, None, str(e)


def _keep_as_list(batch: list[Any]) -> list[Any]:
    return batch


def predict_files(
    predictor: Predictor, files: Sequence[ImageSource], batch_size: int = 64, num_workers: int = 0, keep: int = 0
) -> tuple[list[torch.Tensor | None], list[str], dict[int, torch.Tensor]]:
    """Probabilities per file (None when unreadable), the reasons, and the first ``keep`` inputs for a grid."""
    probs: list[torch.Tensor | None] = [None] * len(files)
    errors = [""] * len(files)
    kept: dict[int, torch.Tensor] = {}
    loader = DataLoader(
        ImageFiles(files, predictor), batch_size=batch_size, num_workers=num_workers, collate_fn=_keep_as_list
    )
    for batch in loader:
        good = [(i, x) for i, x, _ in batch if x is not None]
        for i, _, reason in batch:
            errors[i] = reason
        if not good:
            continue
        out = predictor.probabilities(torch.stack([x for _, x in good]))
        for (i, x), p in zip(good, out, strict=True):
            probs[i] = p
            if len(kept) < keep:
                kept[i] = x
    return probs, errors, kept


def load_images(predictor: Predictor, inputs: str, limit: int) -> torch.Tensor:
    """Up to ``limit`` preprocessed images from ``inputs`` (unreadable ones skipped) as one batch."""
    images = []
    for path in find_inputs(inputs):
        try:
            images.append(predictor.preprocess(path))
        except BadImageError:
            continue
        if len(images) == limit:
            break
    if not images:
        raise UserError(f"no readable images in inputs={inputs}")
    return torch.stack(images)
