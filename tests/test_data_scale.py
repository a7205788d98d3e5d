"""The set-up at scale: what loader workers hold, the process pools, the lock between processes, progress lines.

The scale study itself (2,000 to 200,000 images) is benchmarks/scale_study.py; these tests pin the
properties it relies on, on folders of a few dozen images.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import time
import types
from pathlib import Path

import numpy as np
import pytest
from fixtures import make_bad_files, make_class_folders

from alexnet_lightning.data import cache as cache_module
from alexnet_lightning.data import checks, progress
from alexnet_lightning.data.arrays import PathArray
from alexnet_lightning.data.cache import CachedImages, build_cache
from alexnet_lightning.data.checks import scan_files
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.stats import _ChannelSums

OPAQUE = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
ATOMS = (int, float, str, bytes, bool, type(None))


def _objects_reachable(root: object) -> int:
    """Python objects reachable from ``root``, not entering modules, classes or functions (shared code).

    Numbers and strings count once per reference: small ones are shared objects whose identity says
    nothing (a list of 100 small ints holds 100 values, not one)."""
    seen, todo, values = {id(root)}, [root], 0
    while todo:
        obj = todo.pop()
        if isinstance(obj, OPAQUE):
            continue
        for ref in gc.get_referents(obj):
            if isinstance(ref, ATOMS):
                values += 1
            elif id(ref) not in seen:
                seen.add(id(ref))
                todo.append(ref)
    return len(seen) + values


def _module(root: Path, cache: Path, **options) -> ImageDataModule:
    dm = ImageDataModule("imagefolder", str(root), image_size=16, cache_dir=cache, seed=0, **options)
    dm.setup()
    return dm


def test_what_a_loader_worker_holds_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    """Forked workers copy every page of a Python object they read (its reference count is written), so the
    datasets they receive hold a fixed number of objects, numpy arrays, whatever the folder's size."""
    counts = {}
    for n in (10, 40):
        dm = _module(make_class_folders(tmp_path / f"data{n}", n_per_class=n), tmp_path / "cache")
        train = dm.train_dataloader().dataset
        assert isinstance(train.items, PathArray) and isinstance(train.labels, np.ndarray)
        assert [str(p) for p in train.items] == [str(p) for p in dm.split_items("train")[0]]
        cached = CachedImages(
            build_cache(dm.samples.items, tmp_path / "images", 16), dm.splits["train"], dm.samples.labels
        )
        counts[n] = [
            _objects_reachable(data) for data in (train, dm._loader("val").dataset, _ChannelSums(train), cached)
        ]
        assert len(train) == len(dm.splits["train"]) > 0
    assert counts[10] == counts[40]


def test_path_array_round_trips_and_selects(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jpg", tmp_path / "sub" / "é ü.png", Path("/x"), tmp_path / "b.jpg"]
    packed = PathArray.of(paths)
    assert list(packed) == paths and packed[-1] == paths[-1] and len(packed) == 4
    assert list(packed.take(np.array([3, 1]))) == [paths[3], paths[1]]
    with pytest.raises(IndexError):
        packed[4]


def test_the_check_and_the_cache_in_a_process_pool_match_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=10)
    make_bad_files(root / "daisy")
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    alone = scan_files(paths, workers=1, progress=False)
    monkeypatch.setattr(checks, "CHUNK", 4)  # several tasks for two processes
    monkeypatch.setattr(cache_module, "CHUNK", 4)
    pooled = scan_files(paths, workers=2, progress=False)
    assert np.array_equal(pooled.sizes, alone.sizes) and pooled.bad == alone.bad and len(alone.bad) >= 5
    assert pooled.mode_of(pooled.good) == alone.mode_of(alone.good)
    one = build_cache(paths, tmp_path / "one", size=16, workers=1, progress=False)
    two = build_cache(paths, tmp_path / "two", size=16, workers=2, progress=False)
    assert np.array_equal(np.asarray(one.images()), np.asarray(two.images())) and one.bad == two.bad
    assert np.array_equal(one.sizes, two.sizes) and np.asarray(two.images())[one.rows >= 0].max() > 0


def _set_up(root: str, cache: str, started, messages) -> None:  # runs in a forked process
    """Set up ``root`` like a DDP rank; send back what the data module logged."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("alexnet_lightning")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    real_check = checks._check_one

    def slow_check(path: str):
        started.set()  # the first process is inside the file check, holding its lock
        time.sleep(0.05)
        return real_check(path)

    checks._check_one = slow_check
    dm = ImageDataModule("imagefolder", root, image_size=16, cache_dir=cache, seed=0)
    dm.setup()
    messages.put((records, dm.mean, dm.std))


def test_two_processes_set_up_one_folder_one_builds_the_other_waits_and_reuses(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=12)
    context = multiprocessing.get_context("fork")
    started, messages = context.Event(), context.Queue()
    first = context.Process(target=_set_up, args=(str(root), str(tmp_path / "cache"), started, messages))
    first.start()
    assert started.wait(60)
    second = context.Process(target=_set_up, args=(str(root), str(tmp_path / "cache"), started, messages))
    second.start()
    results = [messages.get(timeout=120) for _ in range(2)]
    first.join(60)
    second.join(60)
    assert first.exitcode == second.exitcode == 0
    logs = ["\n".join(records) for records, _, _ in results]
    built = [log for log in logs if "checked 24 image files" in log]
    waited = [log for log in logs if "file check: another process is building it" in log]
    assert len(built) == len(waited) == 1 and built != waited, logs
    assert "file check of 24 files reused" in waited[0] and "normalization statistics reused" in waited[0]
    assert "normalization statistics of" in built[0]  # computed once, by the process that checked
    assert results[0][1:] == results[1][1:]  # the same statistics in both
    assert len(list((tmp_path / "cache" / "checks").iterdir())) == 1, "one result, no lock file left"
    dm = _module(root, tmp_path / "cache")  # the cache is valid: a third run reuses it as it is
    assert (dm.mean, dm.std) == results[0][1:]


def test_progress_lines_say_how_far_and_how_long_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=10)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line at every step instead of every 30 s
    monkeypatch.setattr(checks, "CHUNK", 4)
    with caplog.at_level(logging.INFO, logger="alexnet_lightning"):
        _module(root, tmp_path / "cache")
    lines = caplog.messages
    assert any(
        line.startswith("checking images: 4 of 20 (20%), ") and "ms an image, about" in line and "left" in line
        for line in lines
    ), lines
    assert any(line.startswith("checked 20 image files (0 bad) in ") for line in lines), lines
    assert any(line.startswith("normalization statistics of 16 images in ") for line in lines), lines
