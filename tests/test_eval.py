from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import compose_config, run_cli
from PIL import Image

from alexnet_lightning.eval import evaluate


def test_training_writes_curves_png(tiny_checkpoint) -> None:
    ckpt, _ = tiny_checkpoint
    curves = ckpt.parent.parent / "curves.png"
    with Image.open(curves) as image:
        assert image.width > 800 and image.height > 200


def test_eval_reproduces_the_training_test_accuracy_and_writes_the_report(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, trained = tiny_checkpoint
    metrics = evaluate(compose_config("eval", tmp_path, f"ckpt_path={ckpt}", "speed_seconds=0.2", "top_losses=8"))
    # same split, same checkpoint, the checkpoint's normalization: the same numbers as training's test step
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    assert metrics["test/acc_top5"] == pytest.approx(trained["test/acc_top5"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-4)

    with (tmp_path / "confusion_matrix.csv").open() as f:
        confusion = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
    assert len(confusion) == 10 and sum(map(sum, confusion)) == 179  # the 10% test split of 1,797 digits
    correct = sum(confusion[i][i] for i in range(10))
    assert correct / 179 == pytest.approx(metrics["test/acc"], abs=1e-6)

    with (tmp_path / "classification_report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == [*map(str, range(10)), "macro avg", "weighted avg"]
    for i, row in enumerate(rows[:10]):
        support = sum(confusion[i])
        assert int(row["support"]) == support
        assert float(row["recall"]) == pytest.approx(confusion[i][i] / support, abs=1e-5)
    assert "weighted avg" in (tmp_path / "classification_report.txt").read_text()

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["samples"] == 179
    for key in ("batch1/images_per_s", "batch64/images_per_s", "batch1/latency_p50_ms", "batch1/latency_p95_ms"):
        assert saved[f"speed/{key}"] > 0
    assert saved["speed/batch1/latency_p95_ms"] >= saved["speed/batch1/latency_p50_ms"]
    assert saved["speed/peak_rss_mb"] > 100
    for png in ("confusion_matrix.png", "top_losses.png", "top_losses_gradcam.png"):
        with Image.open(tmp_path / png) as image:
            assert image.width > 300
    with Image.open(tmp_path / "top_losses.png") as losses, Image.open(tmp_path / "top_losses_gradcam.png") as heat:
        assert heat.width == losses.width  # a companion: the same 8 cells, each under its Grad-CAM map
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_cli_eval_on_val_split(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    result = run_cli("alexnet_lightning.eval", f"ckpt_path={ckpt}", "split=val", "speed_seconds=0.1",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val/acc:" in result.stdout and "images/s at batch 64" in result.stdout
    assert "warning" not in result.stdout  # the split is the training run's
    assert json.loads((tmp_path / "metrics.json").read_text())["samples"] == 179


def test_eval_warns_when_the_split_is_not_the_training_runs(tiny_checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, _ = tiny_checkpoint
    evaluate(compose_config("eval", tmp_path, f"ckpt_path={ckpt}", "seed=1", "speed_seconds=0.05", "top_losses=0"))
    assert "pass the training run's seed=N" in capsys.readouterr().out
