"""Default settings, nothing but data_dir: runs learn on folders of different shapes, and say when they do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_digit_images
from fixtures import make_catsdogs_folder, make_class_folders, make_fake_mnist

from alexnet_lightning.errors import UserError
from alexnet_lightning.train import train


def _folder(kind: str, root: Path) -> tuple[str, Path]:
    """Small folders, so that the sized run (at most 60 epochs) takes seconds, of three different shapes."""
    if kind == "gray_tiny":  # 32 px gray digits, 10 classes
        write_digit_images(root, per_class=12)
        return "imagefolder", root
    if kind == "rgb_large":  # 800x600 colour photos, 3 classes
        return "imagefolder", make_class_folders(root, ("daisy", "roses", "tulips"), n_per_class=14, size=(800, 600))
    return "catsdogs", make_catsdogs_folder(root, n_per_class=20, size=(160, 120))  # two classes, Kaggle naming


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "chosen", "minimum"),
    [
        ("gray_tiny", {"image_size": 64, "in_channels": 1}, 0.5),  # chance 0.1
        ("rgb_large", {"image_size": 64, "in_channels": 3}, 0.75),  # chance 0.33
        ("two_classes", {"image_size": 64, "in_channels": 3}, 0.75),  # chance 0.5
    ],
)
def test_default_settings_learn_on_a_new_folder(make_cfg, tmp_path: Path, kind: str, chosen: dict, minimum: float):
    dataset, folder = _folder(kind, tmp_path / "data")
    cfg = make_cfg(f"dataset={dataset}", f"data_dir={folder}", "logger=csv")  # outputs only: no training setting
    metrics = train(cfg)
    assert metrics["test/acc"] >= minimum, metrics
    assert "warnings" not in metrics, metrics["warnings"]  # a healthy run says nothing
    assert {"image_size": cfg.data.image_size, "in_channels": cfg.model.in_channels} == chosen
    assert cfg.model.stem == "imagenet" and cfg.trainer.max_epochs == 60  # small folders: the most epochs
    assert "image_size: 64" in (tmp_path / "config_resolved.yaml").read_text()


def test_a_huge_learning_rate_says_it_is_not_learning(make_cfg) -> None:
    cfg = make_cfg("optimizer.lr=5.0", "trainer.max_epochs=3", "logger=csv", "test=false")  # checked after 100 steps
    try:
        warnings = train(cfg).get("warnings", [])
    except UserError as e:  # a loss that became NaN or infinite stops the run instead
        assert "the run diverged and stops; lower the learning rate" in str(e)
    else:
        assert any("not learning" in w and "optimizer.lr=0.5" in w for w in warnings), warnings


def test_a_run_too_short_to_be_checked_says_so_instead_of_pointing_at_a_warning(make_cfg) -> None:
    cfg = make_cfg("optimizer.lr=1e-9", "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "logger=csv",
                   "test=false")  # fmt: skip
    warnings = train(cfg).get("warnings", [])
    assert len(warnings) == 1, warnings  # only the end of the run: 3 steps are too few for the learning check
    assert "training ended after 1 epoch:" in warnings[0] and "see the warning above" not in warnings[0]
    assert "train longer (the learning check waits 100 steps)" in warnings[0]


def test_a_diverged_loss_stops_the_run_with_one_line(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model.norm=none", "optimizer.lr=1e30", "trainer.max_epochs=2", "logger=csv", "test=false")
    with pytest.raises(UserError, match=r"the training loss became (nan|inf) .*optimizer\.lr=1e\+29") as error:
        train(cfg)
    assert "\n" not in str(error.value)


def test_mnist_trains_from_its_gz_files(make_cfg, tmp_path: Path) -> None:
    make_fake_mnist(tmp_path / "data", n_train=200, n_test=50, compressed=True)
    metrics = train(make_cfg("dataset=mnist", f"data_dir={tmp_path / 'data'}", "trainer=debug"))
    assert "test/acc" in metrics


def test_a_run_without_validation_is_not_called_no_better_than_chance(make_cfg) -> None:
    cfg = make_cfg("optimizer.lr=1e-9", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                   "+trainer.limit_val_batches=0", "logger=csv", "test=false")  # fmt: skip
    assert "warnings" not in train(cfg)  # no val/acc to judge: the old check read MaxMetric's -inf as "at chance"
