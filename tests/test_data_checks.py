from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fixtures import make_bad_files, make_catsdogs_folder, make_odd_files

from alexnet_lightning.data import checks
from alexnet_lightning.data.checks import scan_files
from alexnet_lightning.data.datamodule import ImageDataModule


def test_bad_files_are_excluded_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=6)
    bad = make_bad_files(root)
    odd = make_odd_files(root)
    dm = ImageDataModule("catsdogs", str(root), image_size=32, batch_size=64, normalize="half", seed=0)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert {Path(p).name: r for p, r in dm.bad_files.items()}.keys() == bad.keys()
    for path, reason in dm.bad_files.items():
        assert bad[Path(path).name] in reason, (path, reason)
    assert f"{len(bad)} bad image files excluded" in caplog.text
    used = {p.name for split in ("train", "val", "test") for p in dm.split_items(split)[0]}
    assert not used & bad.keys() and set(odd) <= used and len(used) == 12 + len(odd)

    dm.write_run_files(tmp_path / "run")
    lines = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    assert len(lines) == len(bad)
    assert {Path(line.split("\t")[0]).name for line in lines} == bad.keys()
    for split in ("train", "val", "test"):  # every remaining file decodes through the real pipeline
        loader = dm.train_dataloader() if split == "train" else dm._loader(split)
        for x, _ in loader:
            assert x.shape[1:] == (3, 32, 32)


def test_scan_result_is_cached_by_file_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=3)
    make_bad_files(root)
    paths = sorted(root.iterdir())
    first = scan_files(paths, tmp_path / "cache")
    monkeypatch.setattr(checks, "_check_one", lambda path: pytest.fail("scanned again"))
    again = scan_files(paths, tmp_path / "cache")
    assert np.array_equal(again.sizes, first.sizes) and again.mode_of(again.good) == first.mode_of(first.good)
    assert again.bad == first.bad and len(first.bad) == len(paths) - 6
    cat0 = paths.index(root / "cat.0.jpg")
    assert tuple(first.sizes[cat0]) == (48, 40) and first.mode_of([cat0]) == ["RGB"]


def test_a_data_set_of_only_bad_files_is_an_error(tmp_path: Path) -> None:
    from alexnet_lightning.errors import UserError

    make_bad_files(tmp_path / "train")
    with pytest.raises(UserError, match="is empty: no usable images found"):
        ImageDataModule("catsdogs", str(tmp_path / "train")).setup()
