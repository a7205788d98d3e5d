from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import compose_config, run_cli
from fixtures import make_catsdogs_folder
from PIL import Image

from alexnet_lightning.errors import UserError
from alexnet_lightning.eval import evaluate
from alexnet_lightning.train import train


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


def test_eval_with_the_checkpoint_alone_finds_its_folder_and_says_what_to_pass_when_it_moved(
    make_cfg, tmp_path: Path
) -> None:
    folder = make_catsdogs_folder(tmp_path / "kaggle", n_per_class=10)
    cfg = make_cfg("dataset=catsdogs", f"data_dir={folder}", "trainer.max_epochs=1", "data.num_workers=0",
                   "data.batch_size=4", f"paths.cache_dir={tmp_path / 'cache'}", "logger=csv")  # fmt: skip
    trained = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    record = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data"]
    assert record == {"source": "catsdogs", "data_dir": str(folder.resolve()),
                      "options": {"classes": ["cat", "dog"], "test_dir": None},
                      "val_fraction": 0.1, "test_fraction": 0.1, "seed": 0}  # fmt: skip

    out = tmp_path / "eval"
    metrics = evaluate(compose_config("eval", out, f"ckpt_path={ckpt}", "speed_seconds=0.05", "top_losses=0"))
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)  # the training run's test split
    assert json.loads((out / "split.json").read_text()) == json.loads((ckpt.parents[1] / "split.json").read_text())

    moved = folder.rename(tmp_path / "moved")
    with pytest.raises(UserError, match=r"the catsdogs images of this checkpoint are not in .*kaggle.* pass data_dir="):
        evaluate(compose_config("eval", tmp_path / "e2", f"ckpt_path={ckpt}", "speed_seconds=0.05"))
    again = evaluate(compose_config("eval", tmp_path / "e3", f"ckpt_path={ckpt}", f"data_dir={moved}",
                                    "speed_seconds=0.05", "top_losses=0"))  # fmt: skip
    assert again["test/acc"] == metrics["test/acc"]

    old = torch.load(ckpt, weights_only=True)  # as written before checkpoints recorded their data
    del old["hyper_parameters"]["data"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(UserError, match=r"does not record its data .* pass dataset=PRESET data_dir=FOLDER"):
        evaluate(compose_config("eval", tmp_path / "e4", f"ckpt_path={tmp_path / 'old.ckpt'}"))
    given = evaluate(compose_config("eval", tmp_path / "e5", f"ckpt_path={tmp_path / 'old.ckpt'}", "dataset=catsdogs",
                                    f"data_dir={moved}", "speed_seconds=0.05", "top_losses=0"))  # fmt: skip
    assert given["test/acc"] == metrics["test/acc"]
