from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import CONF, run_cli
from fixtures import make_bad_files, make_catsdogs_folder, make_fake_mnist
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from alexnet_lightning.errors import UserError
from alexnet_lightning.inspect_data import inspect


@pytest.mark.slow  # a real CLI run: ~20 s of start-up on a 2-core CPU
def test_doctor_reports_counts_bad_files_duplicates_and_draws_samples(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=10)
    bad = make_bad_files(root)
    for i in range(10):  # the same photo under every name: some copies land in other splits
        shutil.copy(root / "cat.0.jpg", root / f"cat.copy{i}.jpg")
    Image.new("L", (30, 20)).save(root / "dog.gray.png")
    out = tmp_path / "out"
    result = run_cli(
        "alexnet_lightning.inspect_data",
        "dataset=catsdogs",
        f"data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = result.stdout
    assert "31 usable images, 2 classes" in report
    assert "train" in report and "val" in report and "test" in report
    assert "modes: RGB 30, L 1" in report
    assert f"bad files: {len(bad)} (excluded from training)" in report
    assert "exact duplicates: 1 groups (10 redundant files)" in report
    assert "across splits (leakage): 1 groups" in report and "with different labels: 0 groups" in report
    assert (out / "samples.png").stat().st_size > 10_000
    assert len((out / "bad_files.txt").read_text().splitlines()) == len(bad)
    assert (out / "split.json").is_file()


def _compose(tmp_path: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("inspect_data", overrides=[*overrides, f"paths.cache_dir={tmp_path / 'cache'}"])
    cfg.paths.output_dir = str(tmp_path / "out")
    GlobalHydra.instance().clear()
    return cfg


def test_doctor_on_mnist(tmp_path: Path) -> None:
    report = "\n".join(inspect(_compose(tmp_path, "dataset=mnist", f"data_dir={make_fake_mnist(tmp_path)}", "grid=4")))
    assert "96 usable images, 10 classes" in report and "modes: L 96" in report
    assert "most common: 28x28 (96)" in report
    assert (tmp_path / "out" / "samples.png").is_file()


def test_doctor_on_a_missing_folder_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data_dir=.*nope is not a folder"):
        inspect(_compose(tmp_path, "dataset=catsdogs", f"data_dir={tmp_path / 'nope'}"))
