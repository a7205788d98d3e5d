"""Reliability promises, tested together: whatever is killed, nothing is lost and nothing half-written is trusted.

- training killed (SIGKILL) between checkpoints resumes to the same result as one go;
- ``prepare`` interrupted mid-copy never loses a source file, and a rerun finishes the job;
- the image cache and the statistics interrupted mid-write leave nothing under their names, and
  damaged ones (truncated, garbage) are rebuilt, not trusted and not a crash.

Crashes are simulated in-process (a write that raises half-way) except for one real kill of training.
The atomic checkpoint write itself: test_resume.py::test_a_crash_while_saving_keeps_the_previous_checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli
from fixtures import make_catsdogs_folder, make_class_folders
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resume import BATCHES, COMMON, EPOCHS

from alexnet_lightning import prepare
from alexnet_lightning.data import cache as cache_module
from alexnet_lightning.data import datamodule as dm_module
from alexnet_lightning.data.cache import build_cache
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.train import train

# A resumed run restores weights, optimizer, scheduler, loop counters, the random generators
# (RandomStateCheckpoint) and the data order (EpochShuffle follows the epoch, not the generator),
# so it trains on the same batches with the same augmentations and dropout masks. It is still not
# bit-identical on a CPU: the fresh process's first training steps give float32 results that differ
# in the last bits (measured: the same weights, optimizer state and random state at the start of the
# resumed epoch, parameter sums 1e-4 apart after it; in the same process, runs repeat to 1e-6), and
# training amplifies that: 1e-5 in val/loss after one resumed epoch, 8e-4 after three. Hence 5e-3
# on the losses and two of the 64 validation images on the accuracies.
LOSS_TOLERANCE = 5e-3
ACC_TOLERANCE = 2 / 64


def _ckpt_epoch(path: Path) -> int:
    """The epoch of a checkpoint, -1 while there is none (atomic writes: never a half-written file)."""
    if not path.is_file():
        return -1
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result_as_one_go(make_cfg, tmp_path: Path) -> None:
    run = tmp_path / "killed"
    args = ["-m", "alexnet_lightning.train", *COMMON, f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (tmp_path / "killed.log").open("w")  # a file, not a pipe: a full pipe would stall the run
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    try:
        while _ckpt_epoch(last) < 1:  # epoch index 1: the second epoch is checkpointed
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint of epoch 2 within 4 minutes"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        log.close()
    killed_at = _ckpt_epoch(last)
    assert killed_at < EPOCHS - 1, "the run finished before it could be killed: make its epochs longer"

    resumed = run_cli("alexnet_lightning.train", *COMMON, f"hydra.run.dir={run}", f"ckpt_path={last}", process=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["epoch"] == EPOCHS - 1 and final["global_step"] == EPOCHS * BATCHES
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and record["metrics"]["epochs"] == EPOCHS
    # the best checkpoint survived the kill, and the resumed run replaced it, not added best-v1.ckpt
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert _ckpt_epoch(run / "checkpoints" / "best.ckpt") <= EPOCHS - 1
    # one TensorBoard run, continued: the epochs logged before and after the kill cover every epoch
    assert set(range(EPOCHS)) <= {int(v) for v in _epoch_values(run)}

    one_go = train(make_cfg(*COMMON))
    for key in ("val/loss", "train/loss"):
        assert one_go[key] == pytest.approx(record["metrics"][key], abs=LOSS_TOLERANCE), key
    for key in ("val/acc", "val/acc_best"):
        assert one_go[key] == pytest.approx(record["metrics"][key], abs=ACC_TOLERANCE), key


def _epoch_values(run: Path) -> list[float]:
    values = []
    for events in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "epoch" in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars("epoch")]
    return values


# prepare


def test_prepare_killed_mid_copy_loses_nothing_and_a_rerun_finishes(tmp_path: Path, monkeypatch) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=6)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    dst = tmp_path / "dst"
    real_copy, copies = prepare.shutil.copy2, []

    def killed_on_the_fifth(source, target, *args, **kwargs):
        if len(copies) == 4:  # half of the file is on disk when the process dies
            Path(target).write_bytes(Path(source).read_bytes()[:100])
            raise KeyboardInterrupt
        copies.append(source)
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(prepare.shutil, "copy2", killed_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_catsdogs(src, dst, "copy", val_fraction=0.25)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # sources untouched
    placed = {p.name: p for p in dst.rglob("*.jpg")}
    assert len(placed) == 4 and all(p.read_bytes() == before[n] for n, p in placed.items()), "no half file is named"

    actions = prepare.prepare_catsdogs(src, dst, "copy", val_fraction=0.25)
    assert actions["already there"] == 4 and sum(actions.values()) == 12
    done = {p.name: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert done == before, "every file once, complete, and no .part file left"


# image cache


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(6):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 24, 3), 40 * i, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_image_cache_killed_mid_build_leaves_nothing_to_trust(images: list[Path], tmp_path: Path, monkeypatch) -> None:
    real_decode, decoded = cache_module.decode, []

    def dies_on_the_fourth(path, *args, **kwargs):
        if len(decoded) == 3:
            raise KeyboardInterrupt
        decoded.append(path)
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(cache_module, "decode", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_cache(images, tmp_path / "cache", size=16, workers=1, progress=False)
    assert _cache_files(tmp_path / "cache") == [], "no partial image file, no metadata"
    monkeypatch.undo()
    cache = build_cache(images, tmp_path / "cache", size=16, progress=False)
    assert cache.decoded == 6 and np.asarray(cache.images())[5].mean() == 200


@pytest.mark.parametrize(
    "damage",
    [
        "truncated images",  # the image file cut short, as a crash of a non-atomic copy leaves it
        "truncated metadata",
        "garbage metadata",
        "metadata of fewer rows",
    ],
)
def test_a_damaged_image_cache_is_rebuilt_not_trusted(images: list[Path], tmp_path: Path, damage: str) -> None:
    first = build_cache(images, tmp_path / "cache", size=16, progress=False)
    meta = first.path.with_suffix(".json")
    if damage == "truncated images":
        first.path.write_bytes(first.path.read_bytes()[: 3 * 16 * 16 * 3 + 7])
    elif damage == "truncated metadata":
        meta.write_text(meta.read_text()[:40])
    elif damage == "garbage metadata":
        meta.write_bytes(os.urandom(64))
    else:
        saved = json.loads(meta.read_text())
        meta.write_text(json.dumps({**saved, "rows": saved["rows"][:3], "sizes": saved["sizes"][:3]}))
    again = build_cache(images, tmp_path / "cache", size=16, progress=False)
    assert again.decoded == 6 and again.path == first.path
    assert np.array_equal(np.asarray(again.images()), np.asarray(first.images()))
    assert json.loads(meta.read_text())["rows"] == list(range(6))
    assert build_cache(images, tmp_path / "cache", size=16, progress=False).decoded == 0, "repaired: reused"


# normalization statistics


def _stats_module(root: Path, cache: Path) -> ImageDataModule:
    dm = ImageDataModule("imagefolder", str(root), image_size=16, val_fraction=0.25, test_fraction=0.0, cache_dir=cache)
    dm.setup()
    return dm


def test_statistics_killed_mid_write_leave_no_file_and_are_computed_again(tmp_path: Path, monkeypatch) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=4, size=(16, 16))
    real_fsync = os.fsync

    def dies_before_the_rename(fd: int) -> None:  # the bytes are written, the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", dies_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        _stats_module(root, tmp_path / "cache")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _cache_files(tmp_path / "cache" / "stats") == []
    dm = _stats_module(root, tmp_path / "cache")
    assert len(_cache_files(tmp_path / "cache" / "stats")) == 1 and all(s > 0 for s in dm.std)


@pytest.mark.parametrize(
    "content", ['{"mean": [0.4, 0.5', "", '{"mean": [0.1], "std": [0.2]}', '{"mean": [NaN, 0, 0], "std": [1, 1, 1]}']
)
def test_damaged_statistics_are_computed_again(tmp_path: Path, monkeypatch, content: str) -> None:
    root = make_class_folders(tmp_path / "data", n_per_class=4, size=(16, 16))
    good = _stats_module(root, tmp_path / "cache")
    (saved,) = (tmp_path / "cache" / "stats").glob("*.json")
    saved.write_text(content)  # truncated, empty, another channel count, not finite
    computed = []
    real = dm_module.channel_stats
    monkeypatch.setattr(dm_module, "channel_stats", lambda *a, **k: computed.append(1) or real(*a, **k))
    again = _stats_module(root, tmp_path / "cache")
    assert computed and again.mean == pytest.approx(good.mean) and again.std == pytest.approx(good.std)
    assert json.loads(saved.read_text())["mean"] == pytest.approx(good.mean)
