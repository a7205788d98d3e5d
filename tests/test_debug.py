"""The debug presets (conf/debug/) do what they say, each in seconds on the default digits."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import run_cli


class Probe(L.Callback):
    """What the trainer really ran: batches, epochs, device, loader processes, anomaly detection."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seen = {"train_batches": 0, "anomaly_detection": []}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.seen["train_batches"] += 1
        self.seen["anomaly_detection"].append(torch.is_anomaly_enabled())
        self.seen["device"] = batch[0].device.type
        self.seen["workers"] = trainer.train_dataloader.num_workers

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen["epochs"] = trainer.current_epoch
        self.path.write_text(json.dumps(self.seen))


SMALL = ("data.batch_size=8",)  # smaller batches, the same numbers of them
# preset -> (overrides that only make its run shorter, training batches run, epochs, checkpoints written)
CASES = {
    "default": (SMALL, 1, 1, False),  # one batch of each stage, no checkpoint
    "limit": (SMALL, 15, 3, True),  # 3 epochs of 5 batches
    "overfit": (("trainer.overfit_batches=1",), 20, 20, False),  # one batch of 32 images, 20 times
    "profiler": ((*SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2"), 2, 1, True),
    "anomaly": ((*SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2"), 2, 1, True),
}
# overfit: 20 epochs are what it takes to learn even one batch (train/acc 0.97-1.0 from about epoch 10
# on; 8 images give too coarse an accuracy): about 18 s of CPU, 25 s here on a loaded 2-core machine
SLOW = {"overfit"}


@pytest.mark.parametrize("preset", [pytest.param(p, marks=[pytest.mark.slow] * (p in SLOW)) for p in CASES])
def test_debug_preset_does_what_it_says(preset: str, tmp_path: Path) -> None:
    shorter, batches, epochs, checkpoints = CASES[preset]
    probe, run = tmp_path / "probe.json", tmp_path / "run"
    result = run_cli(
        "alexnet_lightning.train",
        f"debug={preset}",
        f"hydra.run.dir={run}",
        "logger=csv",  # the TensorBoard images of every validation epoch cost seconds each here
        "callbacks.progress_bar=null",
        "+callbacks.probe._target_=test_debug.Probe",
        f"+callbacks.probe.path={probe}",
        *shorter,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    seen = json.loads(probe.read_text())
    assert (seen["train_batches"], seen["epochs"]) == (batches, epochs)
    assert (seen["device"], seen["workers"]) == ("cpu", 0)  # CPU, one process: what a debugger can follow
    assert all(seen["anomaly_detection"]) == (preset == "anomaly")
    assert bool(list(run.rglob("*.ckpt"))) == checkpoints
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    if preset == "overfit":  # it learns its one batch by heart, and tests nothing
        assert metrics["train/acc"] >= 0.95 and "test/acc" not in metrics, metrics
    else:
        assert "test/acc" in metrics
    if preset == "profiler":
        report = (run / "fit-profiler.txt").read_text()
        assert "FIT Profiler Report" in report and "run_training_epoch" in report
        assert "TEST Profiler Report" in (run / "test-profiler.txt").read_text()
