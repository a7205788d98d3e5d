"""TensorBoard gets more than scalars: hparams with final metrics, images, confusion matrix, lr."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from alexnet_lightning.train import train


def test_tensorboard_run_has_hparams_images_confusion_matrix_and_lr(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "model.head=gap",
        "data.image_size=64",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",
        "+trainer.limit_val_batches=2",
        "logger=tensorboard",
        "test=true",
        "optimizer.lr=3e-4",
    )
    train(cfg)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()

    assert {"train/loss", "val/loss", "val/acc", "val/acc_best", "test/acc"} <= set(tags["scalars"])
    assert any(tag.startswith("lr-AdamW") for tag in tags["scalars"]), tags["scalars"]
    assert {"train/augmented_images", "val/confusion_matrix", "val/misclassified"} <= set(tags["images"])
    accuracies = [e.value for e in acc.Scalars("val/acc")]
    new_best = [a for k, a in enumerate(accuracies) if all(a > b for b in accuracies[:k])]
    # the first validation epoch and each that beat all before it (the sanity check excluded)
    assert len(acc.Images("val/confusion_matrix")) == len(new_best) >= 1, accuracies
    grid = acc.Images("train/augmented_images")[0]
    assert grid.width > 64 and grid.height > 64  # a grid of several 64 px images
    assert [image.step for image in acc.Images("filters/conv1")] == [0, 1]  # the first layer's filters, each epoch

    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
    assert {"val/acc_best", "test/acc"} <= {m.name.tag for m in experiment.metric_infos}
    session = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["optimizer.lr"].number_value == 3e-4
    assert session.hparams["data.batch_size"].number_value == 32
