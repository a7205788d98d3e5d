"""Tiny generated data sets for tests: image folders, fake MNIST IDX and CIFAR-10 pickles, bad files.

Images carry class-dependent content (colour and stripe direction plus noise), so a model
trained on them for a few steps learns something and a broken pipeline shows as chance accuracy.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = [(200, 60, 40), (40, 80, 200), (60, 180, 60), (200, 200, 40), (150, 60, 180)]


def class_image(label: int, index: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """An RGB image of ``size`` (width, height) whose colour and stripes depend on ``label``."""
    width, height = size
    rng = np.random.default_rng(1000 * label + index)
    array = np.empty((height, width, 3), dtype=np.float64)
    array[:] = PALETTE[label % len(PALETTE)]
    stripes = (np.arange(width if label % 2 else height) // 4) % 2 * 50.0
    array += stripes[None, :, None] if label % 2 else stripes[:, None, None]
    array += rng.normal(0, 25, array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def make_catsdogs_folder(root: Path, n_per_class: int = 8, size: tuple[int, int] = (48, 40)) -> Path:
    """A flat Kaggle-style folder of cat.N.jpg and dog.N.jpg."""
    root.mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(("cat", "dog")):
        for i in range(n_per_class):
            class_image(label, i, size).save(root / f"{name}.{i}.jpg", quality=90)
    return root


def make_class_folders(
    root: Path, classes: Sequence[str] = ("daisy", "roses"), n_per_class: int = 8, size: tuple[int, int] = (48, 40)
) -> Path:
    """``root/<class>/<class>_N.jpg`` for each class."""
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            class_image(label, i, size).save(root / name / f"{name}_{i}.jpg", quality=90)
    return root


def _idx(path: Path, array: np.ndarray, compressed: bool = False) -> None:
    """Write ``array`` (uint8) in the IDX format of the original MNIST files (gzip-compressed: ``path.gz``)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compressed:
        Path(f"{path}.gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def make_fake_mnist(
    root: Path, n_train: int = 64, n_test: int = 32, folder: str = "MNIST", compressed: bool = False
) -> Path:
    """``root/<folder>/raw/`` with the four IDX files (``folder="FashionMNIST"`` for Fashion-MNIST).

    ``compressed``: the ``.gz`` files as they are distributed, instead of unpacked ones.

    Class ``k`` is a bright horizontal bar at row ``2k + 4``, so the classes are learnable.
    """
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
        _idx(raw / f"{prefix}-images-idx3-ubyte", images, compressed)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compressed)
    return root


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_fake_cifar10(root: Path, n_train: int = 50, n_test: int = 20) -> Path:
    """``root/cifar-10-batches-py/`` with five train batches, a test batch and the meta file.

    torchvision checks the md5 of the real files: tests call ``accept_fake_cifar10(monkeypatch)``.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = np.array_split(np.arange(n_train), 5)
    batches = [(f"data_batch_{i + 1}", idx) for i, idx in enumerate(per_batch)] + [("test_batch", np.arange(n_test))]
    for name, idx in batches:
        labels = [int(i % 10) for i in idx]
        images = np.stack([np.asarray(class_image(y, int(i), (32, 32))) for i, y in zip(idx, labels, strict=True)])
        data = images.transpose(0, 3, 1, 2).reshape(len(idx), -1) if len(idx) else np.zeros((0, 3072), np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES}, f)
    return root


def accept_fake_cifar10(monkeypatch) -> None:
    """Let torchvision's CIFAR10 loader accept the fake files (it verifies md5s of the real ones)."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda path, md5=None: os.path.isfile(path))


def _png_with_size(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    import io

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def make_bad_files(folder: Path) -> dict[str, str]:
    """One file of each bad kind, named like Kaggle cats; returns name -> the reason the check gives."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "cat.template.jpg"
    class_image(0, 0, (64, 64)).save(good, quality=90)
    jpeg = good.read_bytes()
    good.unlink()
    files = {
        "cat.empty.jpg": (b"", "empty file"),
        "cat.text.jpg": (b"this is not a picture, just text\n", "not a readable image"),
        "cat.truncated.jpg": (jpeg[: len(jpeg) // 3], "not a readable image"),
        "cat.corrupt.jpg": (jpeg[:2] + bytes(range(256)) * 8, "not a readable image"),
        "cat.bomb.png": (_png_with_size(40_000, 40_000), "decompression bomb"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    Image.new("RGB", (1, 1), (255, 0, 0)).save(folder / "cat.pixel.png")
    reasons = {name: reason for name, (_, reason) in files.items()} | {"cat.pixel.png": "too small"}
    if os.geteuid() != 0:  # root reads any file, so the permission case exists only for other users
        unreadable = folder / "cat.unreadable.jpg"
        unreadable.write_bytes(jpeg)
        unreadable.chmod(0)
        reasons[unreadable.name] = "permission denied"
    return reasons


def make_odd_files(folder: Path) -> list[str]:
    """Valid images in the awkward forms users have (all must decode): CMYK, RGBA, palette, 16-bit, GIF, EXIF."""
    folder.mkdir(parents=True, exist_ok=True)
    base = class_image(1, 0, (40, 32))
    base.convert("CMYK").save(folder / "dog.cmyk.jpg")
    base.convert("RGBA").save(folder / "dog.rgba.png")
    base.convert("P").save(folder / "dog.palette.png")
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).save(folder / "dog.deep.png")
    base.save(folder / "dog.animated.gif", save_all=True, append_images=[class_image(1, 1, (40, 32))])
    exif = base.getexif()
    exif[0x0112] = 6
    base.save(folder / "dog.rotated.jpg", exif=exif)
    base.save(folder / "DOG.UPPER.JPEG")
    base.save(folder / "dog.webp.WEBP")
    names = ["dog.cmyk.jpg", "dog.rgba.png", "dog.palette.png", "dog.deep.png", "dog.animated.gif"]
    return [*names, "dog.rotated.jpg", "DOG.UPPER.JPEG", "dog.webp.WEBP"]


IMAGENET_WNIDS = {"n01440764": "tench, Tinca tinca", "n02012849": "crane", "n03126707": "crane"}
"""Three real ImageNet classes, sorted; two share the word ``crane`` as in ILSVRC2012."""
IMAGENET_IDS = {"n03126707": 1, "n01440764": 2, "n02012849": 3}
"""Their ILSVRC2012_IDs in meta.mat: not the sorted order, as in the real devkit (ID 1 is n02119789, kit fox)."""


def write_meta_mat(path: Path, wnids: dict[str, str] = IMAGENET_WNIDS, ids: dict[str, int] = IMAGENET_IDS) -> None:
    """The devkit's ``meta.mat``: a struct array ``synsets`` with the classes and one parent synset (children)."""
    from scipy.io import savemat

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children"]
    synsets = np.zeros((len(wnids) + 1, 1), dtype=[(f, "O") for f in fields])
    for row, (wnid, words) in enumerate(wnids.items()):
        synsets[row, 0] = (ids[wnid], wnid, words, "a class", 0, np.zeros(0))
    synsets[-1, 0] = (1001, "n00001740", "entity", "a parent of them all", 3, np.array(sorted(ids.values())))
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"synsets": synsets})


def make_imagenet_folder(
    root: Path, val: str = "folders", n_train: int = 6, n_val: int = 2, devkit: bool = True, kaggle: bool = True
) -> Path:
    """ILSVRC2012 as it ships, 3 classes: ``train/<wnid>/<wnid>_N.JPEG`` (48x40) and ``val/``.

    ``val="folders"``: ``val/<wnid>/`` (valprep.sh's layout); ``val="flat"``: ``val/ILSVRC2012_val_<n>.JPEG``
    with the classes interleaved (image n shows class n mod 3), labelled by the devkit
    (``ILSVRC2012_devkit_t12/data/``: ground truth and meta.mat) and/or Kaggle's LOC_val_solution.csv.
    ``kaggle`` also writes LOC_synset_mapping.txt; the class content is ``class_image``'s, learnable.
    """
    wnids = list(IMAGENET_WNIDS)
    for label, wnid in enumerate(wnids):
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(n_train):
            class_image(label, i).save(root / "train" / wnid / f"{wnid}_{i}.JPEG", quality=90)
    flat = [(f"ILSVRC2012_val_{n:08d}", wnids[n % 3]) for n in range(1, 3 * n_val + 1)]
    for n, (name, wnid) in enumerate(flat):
        folder = root / "val" / (wnid if val == "folders" else "")
        folder.mkdir(parents=True, exist_ok=True)
        class_image(wnids.index(wnid), 100 + n).save(folder / f"{name}.JPEG", quality=90)
    if devkit:
        data = root / "ILSVRC2012_devkit_t12" / "data"
        write_meta_mat(data / "meta.mat")
        (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{IMAGENET_IDS[w]}\n" for _, w in flat))
    if kaggle:
        rows = "".join(f"{name},{wnid} 10 12 40 38 {wnid} 1 2 30 30\n" for name, wnid in flat)
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {words}\n" for w, words in IMAGENET_WNIDS.items()))
    return root
