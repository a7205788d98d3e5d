"""Read the original files of MNIST, Fashion-MNIST and CIFAR-10 where they sit, compressed or not.

torchvision's loaders want the files unpacked (or ``download=True``, which needs the network and
writes next to the data); these readers take the official ``.gz`` IDX files and the CIFAR-10
``.tar.gz`` (or their unpacked forms) in place and write nothing. CIFAR-10's batches are pickles:
they are read with an unpickler that rebuilds numpy arrays and plain containers and refuses
everything else, so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_lightning.errors import UserError

IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR_MEMBERS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzip-compressed or not."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES:
        raise UserError(f"{path} is not an IDX file (MNIST's format): replace it with the original")
    ndim = data[3]
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", ndim, 4))
    array = np.frombuffer(data, IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated ({array.size} values, its header says {shape}): replace it")
    return array.reshape(shape).copy()  # writable, as torch wants


def _idx_file(raw: Path, name: str) -> Path:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(raw / f"{name}.gz")


def mnist_arrays(raw: Path) -> tuple[np.ndarray, ...]:
    """Train images, train labels, test images, test labels from MNIST's four IDX files in ``raw``."""
    return tuple(
        read_idx(_idx_file(raw, f"{prefix}-{kind}"))
        for prefix in ("train", "t10k")
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    )


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def _unpickle(data: bytes, where: str) -> dict[str, Any]:
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UserError(f"{where} is not a CIFAR-10 batch ({e}): replace it with the original file") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def cifar10_arrays(root: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int], list[str]]:
    """Train images (N, 3, 32, 32), labels, test images, labels and class names of CIFAR-10's python version.

    From ``root/cifar-10-batches-py/`` or, when that is absent, ``root/cifar-10-python.tar.gz``.
    """
    folder, archive = root / "cifar-10-batches-py", root / "cifar-10-python.tar.gz"
    if folder.is_dir():
        members = {name: (folder / name).read_bytes() for name in CIFAR_MEMBERS if (folder / name).is_file()}
    elif archive.is_file():
        with tarfile.open(archive) as tar:
            members = {
                Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]  # a regular file: never None
                for m in tar.getmembers()
                if m.isfile() and Path(m.name).name in CIFAR_MEMBERS
            }
    else:
        raise FileNotFoundError(archive)
    missing = [name for name in CIFAR_MEMBERS if name not in members]
    if missing:
        raise UserError(f"CIFAR-10 files under {root} lack {', '.join(missing)}: replace them with the originals")
    batches = {name: _unpickle(data, f"{root}/{name}") for name, data in members.items()}

    def images(names: list[str]) -> tuple[np.ndarray, list[int]]:
        data = np.concatenate([np.asarray(batches[n]["data"], np.uint8).reshape(-1, 3, 32, 32) for n in names])
        return data, [int(y) for n in names for y in batches[n]["labels"]]

    train, train_labels = images(CIFAR_MEMBERS[:5])
    test, test_labels = images(["test_batch"])
    return train, train_labels, test, test_labels, [str(c) for c in batches["batches.meta"]["label_names"]]
