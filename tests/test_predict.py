from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import compose_config, write_digit_images
from PIL import Image

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.data.sources import label_from_name
from alexnet_lightning.errors import UserError
from alexnet_lightning.inference import Predictor, find_inputs
from alexnet_lightning.predict import predict


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "predictions.csv").open() as f:
        return list(csv.DictReader(f))


def test_predict_folder_with_labels_and_unreadable_files(tiny_checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, _ = tiny_checkpoint
    images = tmp_path / "images"
    paths = write_digit_images(images, per_class=2)
    (images / "3" / "broken.jpg").write_bytes(b"this is not a jpeg")
    (images / "notes.txt").write_text("not an image, not even looked at")
    out = tmp_path / "run"
    summary = predict(compose_config("predict", out, f"ckpt_path={ckpt}", f"inputs={images}", "batch_size=7",
                                     "num_workers=0"))  # fmt: skip

    assert summary == {"files": 21, "unreadable": 1, "labelled": 20, "correct": summary["correct"]}
    rows = _rows(out)
    assert len(rows) == 21
    broken = next(r for r in rows if r["path"].endswith("broken.jpg"))
    assert broken["predicted"] == "" and "not a readable image" in broken["error"]
    good = [r for r in rows if not r["error"]]
    assert all(r["true"] == Path(r["path"]).parent.name for r in good)
    assert sum(r["correct"] == "true" for r in good) == summary["correct"]
    assert all(len(r["top_k"].split()) == 5 for r in good)

    # the batched CSV equals one image at a time through the checkpoint's own preprocessing
    predictor = Predictor(load_classifier(ckpt), torch.device("cpu"))
    for row in good[:4]:
        probs = predictor.probabilities(predictor.preprocess(Path(row["path"]))[None])[0]
        assert predictor.class_names[int(probs.argmax())] == row["predicted"]
        assert float(probs.max()) == pytest.approx(float(row["probability"]), abs=1e-5)

    with Image.open(out / "predictions.png") as grid:
        assert grid.width > 500
    assert not (out / "predictions_gradcam.png").exists()  # only with explain=true
    printed = capsys.readouterr().out
    assert f"correct: {summary['correct']}/20" in printed and "unreadable: " in printed
    assert len(paths) == 20 and all(p.exists() for p in paths)  # users' files stay where they are


def test_predict_kaggle_names_glob_and_single_file(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    write_digit_images(tmp_path / "flat", per_class=1, kaggle=True)
    out = tmp_path / "glob"
    summary = predict(compose_config("predict", out, f"ckpt_path={ckpt}", f"inputs='{tmp_path}/flat/[0-4].*.png'",
                                     "explain=true"))  # fmt: skip
    assert summary["files"] == 5 and summary["labelled"] == 5
    assert {r["true"] for r in _rows(out)} == {"0", "1", "2", "3", "4"}
    with Image.open(out / "predictions.png") as grid, Image.open(out / "predictions_gradcam.png") as heatmaps:
        assert heatmaps.width == grid.width  # the same five labelled cells, in colour
        assert heatmaps.mode == "RGBA" and len(set(heatmaps.convert("RGB").getdata())) > 1000

    single = tmp_path / "single"
    predict(compose_config("predict", single, f"ckpt_path={ckpt}", f"inputs={tmp_path}/flat/7.0.png"))
    (row,) = _rows(single)
    assert row["true"] == "7" and row["predicted"] in [str(i) for i in range(10)]


def test_label_from_folder_or_kaggle_name() -> None:
    classes = ["cat", "dog"]
    assert label_from_name(Path("data/Dog/x.jpg"), classes) == 1
    assert label_from_name(Path("train/cat.12.jpg"), classes) == 0
    assert label_from_name(Path("photos/holiday.jpg"), classes) is None


@pytest.mark.parametrize(("inputs", "message"), [("nowhere/at/all", "does not exist"), ("empty", "no images in")])
def test_bad_inputs_are_one_line(tmp_path: Path, inputs: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=message):
        find_inputs(str(tmp_path / inputs))
    with pytest.raises(UserError, match="no files match"):
        find_inputs(str(tmp_path / "*.jpg"))
