"""Sample digits on disk: test-split images in class folders, written once, never over a user's file."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

from alexnet_lightning import samples
from alexnet_lightning.predict import predict


def _test_split_images(tmp_path: Path) -> dict[bytes, str]:
    """The digits' test split as training makes it: image bytes -> class name."""
    datamodule = hydra.utils.instantiate(compose_config("config", tmp_path / "run", "dataset=digits").data)
    datamodule.load_samples()
    items, labels = datamodule.split_items("test")
    load, classes = datamodule.samples.load, datamodule.classes
    return {load(i)[0].numpy().tobytes(): classes[y] for i, y in zip(items, labels, strict=True)}


def test_samples_are_test_split_digits_in_class_folders_written_once(tmp_path: Path, capsys) -> None:
    out = tmp_path / "digits"
    samples.main([str(out)])
    files = sorted(out.rglob("*.png"))
    assert [p.relative_to(out).as_posix() for p in files] == [f"{c}/{n}.png" for c in range(10) for n in range(3)]
    held_out = _test_split_images(tmp_path)
    for path in files:
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == (8, 8)
            assert held_out[np.asarray(image).tobytes()] == path.parent.name  # unseen in training, right folder
    printed = capsys.readouterr().out
    assert f"30 PNG files in {out}/<class>/ (30 written, 0 already there)" in printed
    assert f"inputs={out}" in printed

    (out / "3" / "0.png").write_bytes(b"the user's own file")
    (out / "3" / "mine.jpg").write_bytes(b"another one")
    (out / "7" / "2.png").unlink()
    samples.main([str(out), "--per-class", "3"])
    assert "(1 written, 29 already there)" in capsys.readouterr().out
    assert (out / "3" / "0.png").read_bytes() == b"the user's own file" and (out / "3" / "mine.jpg").exists()
    assert (out / "7" / "2.png").is_file() and not list(out.rglob("*.partial"))


def test_predict_reads_the_true_class_of_each_sample(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    samples.write_samples(tmp_path / "digits", per_class=2)
    cfg = compose_config("predict", tmp_path / "run", f"ckpt_path={ckpt}", f"inputs={tmp_path / 'digits'}")
    summary = predict(cfg)
    assert summary["files"] == summary["labelled"] == 20 and summary["unreadable"] == 0


def test_a_bad_count_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        samples.main([str(tmp_path), "--per-class", "0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: --per-class 0 is invalid: it must be a whole number >= 1\n"
