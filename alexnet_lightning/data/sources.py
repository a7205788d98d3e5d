"""Where samples come from: each source returns items, labels, class names and a loader.

An item is whatever identifies one image (a path, an index into an array); ``load`` turns
it into a uint8 CxHxW tensor. Decoding stays separate from augmentation and normalization
so that a device-side path can replace the later steps.

Folder sources sort their paths, so the same files give the same items on every machine.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alexnet_lightning.data import archives, ilsvrc
from alexnet_lightning.data.decode import decode, is_image_path
from alexnet_lightning.errors import UserError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Samples:
    items: Any
    """A list as the sources build it; a PathArray (files) or numpy array (indices) after arrays.compact."""
    labels: Any
    """Class index per item: a list, an int64 array after arrays.compact."""
    classes: list[str]
    load: Callable[[Any], torch.Tensor]
    splits: dict[str, list[int]] = field(default_factory=dict)
    """Positions into ``items`` of the splits the data set ships (some or all of train/val/test)."""
    root: Path | None = None
    """Folder that item paths are shown relative to."""
    skipped: Counter = field(default_factory=Counter)
    """Files that are not samples, by why: hidden, not an image, no class in the name."""
    name: str | None = None
    """In-memory data sets: the prefix of their items' names (``digits:5``, ``MNIST:test:3``)."""

    def describe(self, i: int) -> str:
        """A stable, human-readable name of item ``i`` for split files and reports.

        A plain method over plain fields, so that Samples pickles (DDP spawn, DataLoader workers).
        """
        item = self.items[i]
        if self.name is not None:
            test = self.splits.get("test")
            if not test:
                return f"{self.name}:{item}"
            return f"{self.name}:test:{item - test[0]}" if item >= test[0] else f"{self.name}:train:{item}"
        if isinstance(item, Path) and self.root is not None and item.is_relative_to(self.root):
            return item.relative_to(self.root).as_posix()
        return str(item)


def _folder(data_dir: str | None, key: str = "data_dir") -> Path:
    if data_dir is None:
        raise UserError(f"{key} is not set: pass {key}=/path/to/your/images")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"{key}={data_dir} is not a folder: check the path")
    return path


def image_files(folder: Path, skipped: Counter) -> list[Path]:
    """All images below ``folder``, sorted; hidden files/folders and non-images are counted in ``skipped``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            if path.is_file():
                skipped["hidden"] += 1
        elif path.is_file():
            if is_image_path(path):
                found.append(path)
            else:
                skipped["not an image"] += 1
    return found


def label_from_name(path: str | Path, class_names: Sequence[str]) -> int | None:
    """The class a file's name gives, any case: its folder (``cats/1.jpg``) or Kaggle prefix (``cat.12.jpg``).

    The one naming rule for files without a class-folder tree: the catsdogs source labels its files
    with it, and predict the files it is given. None when neither names a class.
    """
    path = Path(path)
    lookup = {c.lower(): i for i, c in enumerate(class_names)}
    for candidate in (path.parent.name, path.name.split(".")[0]):
        if candidate.lower() in lookup:
            return lookup[candidate.lower()]
    return None


def catsdogs(data_dir: str | None, classes: Sequence[str] = ("cat", "dog"), test_dir: str | None = None) -> Samples:
    """A Kaggle folder, labels by ``label_from_name``: file-name prefix (``cat.123.jpg``) or a class sub-folder.

    Only names below ``data_dir`` count (its own name never labels). Nothing is moved. ``test_dir``
    (same naming, e.g. a labelled holdout) becomes the test split.
    """
    classes = [c.lower() for c in classes]
    skipped: Counter = Counter()
    items: list[Path] = []
    labels, unmatched = [], []
    folders = [(_folder(data_dir), None)] + ([(_folder(test_dir, "data.options.test_dir"), "test")] if test_dir else [])
    splits: dict[str, list[int]] = {}
    for folder, split in folders:
        for path in image_files(folder, skipped):
            label = label_from_name(path.relative_to(folder), classes)
            if label is None:
                unmatched.append(path)
                continue
            if split:
                splits.setdefault(split, []).append(len(items))
            items.append(path)
            labels.append(label)
    if unmatched:
        skipped["no class in the name"] = len(unmatched)
        shown = ", ".join(p.name for p in unmatched[:5])
        log.warning(
            "%d files match no class prefix or folder (%s) and are ignored: %s%s",
            len(unmatched),
            "/".join(classes),
            shown,
            ", ..." if len(unmatched) > 5 else "",
        )
    return Samples(items, labels, classes, decode, splits=splits, root=_folder(data_dir), skipped=skipped)


def _class_folders(
    folder: Path, classes: list[str] | None, skipped: Counter
) -> tuple[list[Path], list[int], list[str]]:
    """Images of ``folder/<class>/**``; the class list comes from the first folder read."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = names
    items, labels = [], []
    for name in names:
        if name not in classes:
            raise UserError(f"{folder / name} is a class that the training folder lacks: rename or remove it")
        found = image_files(folder / name, skipped)
        items += found
        labels += [classes.index(name)] * len(found)
    loose = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if loose:
        skipped["outside class folders"] += loose
    return items, labels, classes


def imagefolder(data_dir: str | None, test_dir: str | None = None) -> Samples:
    """``data_dir/<class>/...`` or ``data_dir/{train,val,test}/<class>/...`` (splits as given)."""
    root = _folder(data_dir)
    subfolders = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    given = {SPLIT_FOLDERS[name]: path for name, path in subfolders.items() if name in SPLIT_FOLDERS}
    if "train" in given and len(given) == len(subfolders):
        parts = sorted(given.items(), key=lambda kv: ("train", "val", "test").index(kv[0]))
    else:
        parts = [("", root)]
    if test_dir:
        parts.append(("test", _folder(test_dir, "data.options.test_dir")))
    skipped: Counter = Counter()
    items: list[Path] = []
    labels, splits, classes = [], {}, None
    for split, folder in parts:
        found, found_labels, classes = _class_folders(folder, classes, skipped)
        if split:
            splits[split] = list(range(len(items), len(items) + len(found)))
        items += found
        labels += found_labels
    return Samples(items, labels, classes or [], decode, splits=splits, root=root, skipped=skipped)


def imagenet(data_dir: str | None) -> Samples:
    """ILSVRC2012 as it ships: ``train/<wnid>/`` is trained on and ``val/`` becomes the test split.

    ``val/`` may hold class folders (as PyTorch's valprep.sh leaves it) or the 50,000 images flat, labelled
    by the devkit's or Kaggle's ground truth (ilsvrc.py). Classes are the sorted wnids, the order of
    torchvision's ImageNet weights; their names come from the wnids' words where data_dir has them.
    """
    folder = _folder(data_dir)
    root = ilsvrc.image_root(folder)
    skipped: Counter = Counter()
    items, labels, wnids = _class_folders(root / "train", None, skipped)
    val = root / "val"
    if any(p.is_dir() and not p.name.startswith(".") for p in val.iterdir()):
        val_items, val_labels, _ = _class_folders(val, wnids, skipped)
    else:
        val_items, val_labels = _flat_val(folder, val, wnids, skipped)
    splits = {"train": list(range(len(items))), "test": list(range(len(items), len(items) + len(val_items)))}
    names = ilsvrc.class_names(wnids, ilsvrc.class_words(folder))
    return Samples(items + val_items, labels + val_labels, names, decode, splits=splits, root=folder, skipped=skipped)


def _flat_val(data_dir: Path, val: Path, wnids: list[str], skipped: Counter) -> tuple[list[Path], list[int]]:
    """The images of a flat ``val/`` and their labels from the ground truth; images it does not name are skipped."""
    truth, source = ilsvrc.val_labels(data_dir)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    items, labels, unnamed, foreign = [], [], 0, []
    for path in image_files(val, skipped):
        wnid = truth.get(path.stem)
        if wnid is None:
            unnamed += 1
        elif wnid not in index:
            foreign.append((path, wnid))
        else:
            items.append(path)
            labels.append(index[wnid])
    if foreign:
        path, wnid = foreign[0]
        raise UserError(
            f"{source.name} gives {len(foreign)} images of {val} a class that train/ lacks (the first: {path.name} "
            f"is {wnid}): complete train/ with those class folders, or check that {source.name} belongs to val/"
        )
    if unnamed and not items:
        raise UserError(f"none of the {unnamed} images in {val} is named in {source}: check that it belongs to them")
    if unnamed:
        skipped["not in the ground truth"] += unnamed
        log.warning("%d images in %s are not named in %s and are ignored", unnamed, val, source)
    return items, labels


def _torchvision(name: str, data_dir: str | None, download: bool) -> Samples:
    """MNIST, FashionMNIST or CIFAR10 from their original files, read in place (.gz and .tar.gz too).

    ``download=True`` lets torchvision fetch the files first (it needs the network); reading is
    archives.py's either way. Train comes first, then test, which is kept as the test split.
    """
    from torchvision import datasets

    root = Path(data_dir or ".").expanduser()
    where = {"MNIST": "MNIST/raw/", "FashionMNIST": "FashionMNIST/raw/", "CIFAR10": "cifar-10-python.tar.gz"}[name]
    train_labels: list[int] | np.ndarray
    test_labels: list[int] | np.ndarray
    try:
        if download:
            getattr(datasets, name)(str(root), train=True, download=True)
        if name == "CIFAR10":
            train, train_labels, test, test_labels, classes = archives.cifar10_arrays(root)
        else:
            train, train_labels, test, test_labels = archives.mnist_arrays(root / name / "raw")
            classes = list(getattr(datasets, name).classes)
    except (RuntimeError, OSError) as e:  # missing files, or no network for download=True
        how = "the download failed" if download else "they are missing"
        raise UserError(
            f"{name} files under {root} cannot be read ({how}): put the original files into {root / where} "
            "(from the official site or a copy), or pass data.options.download=true on a machine with internet"
        ) from e
    images = torch.cat([torch.as_tensor(np.asarray(x)) for x in (train, test)])
    images = images.unsqueeze(1) if images.ndim == 3 else images
    labels = [int(y) for y in (*train_labels, *test_labels)]
    n_train = len(train_labels)
    return Samples(
        items=list(range(len(labels))),
        labels=labels,
        classes=classes,
        load=images.__getitem__,
        splits={"test": list(range(n_train, len(labels)))},
        name=name,
    )


def mnist(data_dir: str | None, download: bool = False) -> Samples:
    return _torchvision("MNIST", data_dir, download)


def fashion_mnist(data_dir: str | None, download: bool = False) -> Samples:
    return _torchvision("FashionMNIST", data_dir, download)


def cifar10(data_dir: str | None, download: bool = False) -> Samples:
    """torchvision's pickles, or the image-folder form (``train/<class>/``, ``test/<class>/``)."""
    root = _folder(data_dir)
    if (root / "train").is_dir() and not (root / "cifar-10-batches-py").is_dir():
        return imagefolder(data_dir)
    return _torchvision("CIFAR10", data_dir, download)


def digits(data_dir: str | None = None) -> Samples:
    """scikit-learn's 1,797 bundled 8x8 handwritten digits, as 1-channel uint8 images."""
    from sklearn.datasets import load_digits

    if data_dir is not None:  # the default data set: a data_dir given without dataset= is the user's own folder
        raise UserError(
            f"data_dir={data_dir} is set but dataset=digits (the bundled default) reads no folder: "
            "add dataset=imagefolder (one sub-folder per class) or dataset=catsdogs (cat.1.jpg, dog.1.jpg)"
        )

    bunch = load_digits()
    images = torch.from_numpy(np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8)).unsqueeze(1)
    return Samples(
        items=list(range(len(images))),
        labels=[int(y) for y in bunch.target],
        classes=[str(c) for c in bunch.target_names],
        load=images.__getitem__,
        name="digits",
    )


SOURCES: dict[str, Callable[..., Samples]] = {
    "digits": digits,
    "catsdogs": catsdogs,
    "imagefolder": imagefolder,
    "imagenet": imagenet,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
}


def find_samples(source: str, data_dir: str | None, options: dict[str, Any] | None = None) -> Samples:
    """Look the source up by name and call it with its ``data.options``."""
    if source not in SOURCES:
        raise UserError(f"unknown data source {source!r}: use one of {', '.join(SOURCES)}")
    try:
        return SOURCES[source](data_dir, **(options or {}))
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise UserError(f"data.options for {source!r}: {str(e).split('() ')[-1]}") from None


def validate(samples: Samples, source: str, data_dir: str | None) -> None:
    """One clear error for a data set no classifier can learn from."""
    if not len(samples.items):  # a list, or the arrays of compact samples
        raise UserError(f"data set {source!r} in {data_dir} is empty: no usable images found")
    present = set(samples.labels)
    if len(present) < 2:
        raise UserError(
            f"data set {source!r} in {data_dir} has only one class ({samples.classes[min(present)]}): "
            "a classifier needs at least two"
        )
    empty = [c for i, c in enumerate(samples.classes) if i not in present]
    if empty:
        raise UserError(f"class folders without usable images: {', '.join(empty)}; add images or remove them")
