"""Decode every image once into a fixed-size uint8 memory-mapped cache, reused across runs and sweeps.

Each image is resized (antialiased) to ``size x size`` regardless of its aspect ratio, and its
original ``(height, width)`` is kept beside it: fixed-size rows make batches a plain stack that
the device path (device_augment.py) crops with per-sample boxes in original-pixel units, so area fractions
and aspect ratios stay those of the original photo while no pixel of it is cut away. 256 px
suits 224/227 px crops. The cache file is keyed by ``fingerprint(items, size, channels)``, so
a renamed, added, removed or rewritten file builds a new cache; an unchanged list reuses the
old one without decoding anything. Files that cannot be decoded are left out and reported as
``{name: reason}``, as the CPU path reports bad files.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from alexnet_lightning.atomic import atomic_path, write_atomic
from alexnet_lightning.data.decode import BadImageError, decode, to_channels
from alexnet_lightning.data.fingerprint import fingerprint
from alexnet_lightning.data.lock import exclusive
from alexnet_lightning.data.order import EpochShuffle
from alexnet_lightning.data.pool import CHUNK, pool_size, process_pool
from alexnet_lightning.data.progress import PassProgress
from alexnet_lightning.errors import UserError

CACHE_FORMAT = 1  # bump when the file layout changes, so old caches are not misread
DECODERS = ("pil", "nvjpeg")
EXIF_ORIENTATION = 0x0112


@dataclass
class ImageCache:
    """A built cache: ``rows[i]`` is item i's row in the image file, -1 for a bad file."""

    path: Path
    count: int
    channels: int
    size: int
    rows: np.ndarray
    sizes: np.ndarray
    """(count, 2) original height and width of each row."""
    bad: dict[str, str]
    decoded: int
    """How many images this call decoded: 0 when an existing cache was reused."""

    def images(self) -> np.memmap:
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, self.channels, self.size, self.size))


def cache_key(items: Sequence[Any], size: int, channels: int, identity: Sequence[Any] = ()) -> str:
    return fingerprint(items, "image-cache", CACHE_FORMAT, size, channels, *identity)


def cache_files(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    """The image file and its metadata (written last: a cache is built when both exist)."""
    cache_dir = Path(cache_dir).expanduser()
    return cache_dir / f"images-{key}.u8", cache_dir / f"images-{key}.json"


def _fit(image: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    # decode() converts files; loaders of in-memory data sets may not
    return TF.resize(to_channels(image, channels), [size, size], antialias=True)


def build_cache(
    items: Sequence[Any],
    cache_dir: str | Path,
    size: int = 256,
    channels: int = 3,
    load: Callable[[Any], torch.Tensor] | None = None,
    decoder: str = "pil",
    workers: int | None = None,
    progress: bool = True,
    identity: Sequence[Any] = (),
    key: str | None = None,
) -> ImageCache:
    """Decode ``items`` (image paths, or anything ``load`` turns into a uint8 CxHxW tensor) into a cache.

    Decoding runs in a pool of ``workers`` processes (default: one per core; pool.py), each writing its
    rows into the file; ``decoder=nvjpeg`` decodes JPEG files on the GPU in batches instead. ``identity``
    (e.g. the source and folder) joins the key, so that data sets whose items are plain indices never
    share a cache; ``key``: cache_key's value, when the caller has it already. Processes that need the
    same cache at once wait for the first to build it (lock.py).
    """
    if decoder not in DECODERS:
        raise UserError(f"data.decode={decoder!r} is unknown: use one of {', '.join(DECODERS)}")
    if decoder == "nvjpeg" and not torch.cuda.is_available():
        raise UserError("data.decode=nvjpeg needs a CUDA GPU and none is visible: use data.decode=pil")
    path, meta_path = cache_files(cache_dir, key or cache_key(items, size, channels, identity))
    with exclusive(path, "image cache"):
        built = _load_built(path, meta_path, len(items), channels, size)
        if built is not None:
            return built
        with atomic_path(path) as partial:  # an interrupted build leaves no half-written file behind
            load = load or functools.partial(decode, channels=channels)
            sizes, bad = _write(partial, items, size, channels, load, decoder, workers, progress)
        rows = np.where(sizes[:, 0] > 0, np.arange(len(items)), -1)
        meta = {"rows": rows.tolist(), "sizes": sizes.tolist(), "bad": bad}
        write_atomic(meta_path, json.dumps(meta))  # written last: a cache without its metadata is never used
    return ImageCache(path, len(items), channels, size, rows, sizes, bad, len(items))


def _load_built(path: Path, meta_path: Path, count: int, channels: int, size: int) -> ImageCache | None:
    """The cache an earlier run built, or None when it is missing or damaged (and is then built again).

    Damaged: metadata that does not parse or does not describe ``count`` rows, or an image file whose
    length is not ``count`` rows of ``channels x size x size`` bytes (truncated, or written by other code).
    """
    if not (meta_path.is_file() and path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        rows, sizes, bad = (
            np.asarray(meta["rows"], dtype=np.int64),
            np.asarray(meta["sizes"], dtype=np.int64),
            meta["bad"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    expected_bytes = max(count, 1) * channels * size * size
    if rows.shape != (count,) or sizes.shape != (count, 2) or not isinstance(bad, dict):
        return None
    if path.stat().st_size != expected_bytes or rows.max(initial=-1) >= count:
        return None
    return ImageCache(path, count, channels, size, rows, sizes, bad, 0)


def _write(
    partial: Path,
    items: Sequence[Any],
    size: int,
    channels: int,
    load: Callable[[Any], torch.Tensor],
    decoder: str,
    workers: int | None,
    progress: bool,
) -> tuple[np.ndarray, dict[str, str]]:
    """Fill the image file row by row; returns original sizes (0 for bad files) and bad files' reasons."""
    n = len(items)
    with open(partial, "wb") as f:
        f.truncate(max(n, 1) * channels * size * size)  # every row, zeros until written
    sizes = np.zeros((n, 2), dtype=np.int64)
    bad: dict[str, str] = {}
    jobs = (
        (partial, start, [items[i] for i in range(start, min(start + CHUNK, n))], size, channels, load)
        for start in range(0, n, CHUNK)
    )
    workers = 1 if decoder == "nvjpeg" else pool_size(n, workers)
    with PassProgress(f"caching {n} images at {size}px", n, progress) as bar, process_pool(workers) as imap:
        if decoder == "nvjpeg":
            done: Iterator = _nvjpeg_rows(partial, items, size, channels, load)
        else:
            done = imap(_write_rows, jobs)
        for start, written, failed in done:
            sizes[start : start + len(written)] = written
            bad.update(failed)
            bar.advance(len(written))
        bar.finish(f"cached {n} images at {size} px ({len(bad)} bad) in {workers} process{'es' * (workers > 1)}")
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    return sizes, bad


def _write_rows(
    job: tuple[Path, int, list[Any], int, int, Callable[[Any], torch.Tensor]],
) -> tuple[int, np.ndarray, dict[str, str]]:
    """Decode a chunk of items into their rows of the file (a pool task): their sizes, and bad files' reasons."""
    path, start, items, size, channels, load = job
    sizes = np.zeros((len(items), 2), dtype=np.int64)
    bad: dict[str, str] = {}
    fd = os.open(path, os.O_WRONLY)
    try:
        for k, item in enumerate(items):
            sizes[k] = _load_row(fd, start + k, item, load, size, channels, bad)
    finally:
        os.close(fd)
    return start, sizes, bad


def _load_row(
    fd: int, row: int, item: Any, load: Callable[[Any], torch.Tensor], size: int, channels: int, bad: dict[str, str]
) -> tuple[int, int]:
    """``_put_row`` of ``load(item)``; a bad file goes into ``bad`` with its reason, and its size is (0, 0)."""
    try:
        return _put_row(fd, row, load(item), size, channels)
    except BadImageError as e:
        bad[str(item)] = str(e)
        return 0, 0


def _put_row(fd: int, row: int, image: torch.Tensor, size: int, channels: int) -> tuple[int, int]:
    """Write ``image``, fitted to the cache, as row ``row``; return its original (height, width).

    A write, not a memory mapping: no page of a cache larger than memory ever counts in the builder's memory.
    """
    data = _fit(image, size, channels).cpu().numpy().tobytes()
    os.pwrite(fd, data, row * len(data))
    return image.shape[-2], image.shape[-1]


def _nvjpeg_ready(path: str) -> bool:
    """A JPEG that nvJPEG decodes as PIL would: nvJPEG ignores EXIF orientation, so rotated photos go to PIL."""
    if not path.lower().endswith((".jpg", ".jpeg")):
        return False
    try:
        with Image.open(path) as image:  # reads the header only
            return image.format == "JPEG" and image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:  # unreadable: PIL's decode() names the reason
        return False


def _nvjpeg_rows(
    path: Path, items: Sequence[Any], size: int, channels: int, load: Callable, batch: int = CHUNK
) -> Iterator[tuple[int, np.ndarray, dict[str, str]]]:
    """Decode JPEG files on the GPU in batches and resize them there; other files and failures go through
    ``load`` (PIL). Yields what ``_write_rows`` returns, one batch at a time."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    fd = os.open(path, os.O_WRONLY)
    try:
        for start in range(0, len(items), batch):
            indices = range(start, min(start + batch, len(items)))
            jpegs = [i for i in indices if _nvjpeg_ready(str(items[i]))]
            try:
                decoded = decode_jpeg([read_file(str(items[i])) for i in jpegs], mode=mode, device="cuda")
            except RuntimeError:  # one bad file fails the batch: let PIL find and name it
                decoded, jpegs = [], []
            sizes = np.zeros((len(indices), 2), dtype=np.int64)
            bad: dict[str, str] = {}
            for i, image in zip(jpegs, decoded, strict=True):
                sizes[i - start] = _put_row(fd, i, image, size, channels)
            for i in sorted(set(indices) - set(jpegs)):
                sizes[i - start] = _load_row(fd, i, items[i], load, size, channels, bad)
            yield start, sizes, bad
    finally:
        os.close(fd)


class CachedImages(Dataset):
    """(uint8 CxSxS image, label, original (height, width)) for some items of a cache.

    The size triple lets the device path crop in original-pixel units (see device_augment.py). Items whose
    file was bad are skipped (build_cache reported them). Rows are read with ``pread`` rather than
    through a memory map: the pages a map touches count towards the process's memory (PSS) for as
    long as they stay mapped, so an epoch over a large cache would look like, and be accounted as, a
    process holding all of it. The file is opened lazily in each DataLoader worker; rows and labels
    are numpy arrays, which workers read without copying (arrays.py).
    """

    def __init__(self, cache: ImageCache, positions: Sequence[int], labels: Sequence[int] | np.ndarray) -> None:
        self.cache = cache
        at = np.asarray(positions, dtype=np.int64)
        rows = cache.rows[at]
        self.rows = rows[rows >= 0]
        self.labels = np.asarray(labels, dtype=np.int64)[at[rows >= 0]]
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        if self._fd is None:
            self._fd = os.open(self.cache.path, os.O_RDONLY)
        row = self.rows[i]
        image = np.empty((self.cache.channels, self.cache.size, self.cache.size), dtype=np.uint8)
        if os.preadv(self._fd, [image], row * image.nbytes) != image.nbytes:  # type: ignore[list-item]  # numpy types ndarray as a Buffer only for Python >= 3.12
            raise UserError(f"image cache {self.cache.path} is shorter than its metadata: delete it (make clean-cache)")
        return torch.from_numpy(image), int(self.labels[i]), torch.from_numpy(self.cache.sizes[row])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


class DeviceBatches:
    """Shuffled uint8 batches of a cache held whole in device memory: no workers, no per-item copies.

    For caches that fit the device (2,000 images at 256 px are 0.4 GB; 25,000 are 4.9 GB) this
    replaces the DataLoader: each batch is one index into the resident tensor, so the device never
    waits for host-side collation or transfers. Yields ``(images, labels, sizes)`` like CachedImages
    batches; the device is resolved lazily (``device`` may be a callable, e.g. the trainer's root device).
    """

    def __init__(
        self,
        data: CachedImages,
        batch_size: int,
        device: torch.device | str | Callable[[], torch.device] = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        self.data, self.batch_size, self.device = data, batch_size, device
        self.shuffle, self.drop_last = shuffle, drop_last
        # Lightning calls set_epoch on a loader's sampler each epoch: the order follows the epoch on resume
        self.sampler = EpochShuffle(len(data), seed)
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, labels and sizes of the data set's rows, copied to the device once."""
        if self._tensors is None:
            device = torch.device(self.device() if callable(self.device) else self.device)
            images = torch.from_numpy(np.ascontiguousarray(self.data.cache.images()[self.data.rows]))
            sizes = torch.from_numpy(self.data.cache.sizes[self.data.rows])
            labels = torch.as_tensor(self.data.labels, dtype=torch.long, device=device)
            self._tensors = (images.to(device), labels, sizes.to(device))
        return self._tensors

    def __iter__(self):
        images, labels, sizes = self.tensors()
        if self.shuffle:  # a new, reproducible order every epoch
            order = self.sampler.permutation().to(images.device)
        else:
            order = torch.arange(len(images), device=images.device)
        self.sampler.epoch += 1  # a plain loop's next epoch; Lightning sets it before each epoch
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield images[index], labels[index], sizes[index]
