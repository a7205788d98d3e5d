"""DDP simulated with 2 CPU processes (gloo) under Hydra, launched as a -m sweep."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import lightning as L
import pytest
from conftest import run_cli
from omegaconf import OmegaConf

from alexnet_lightning.module import AlexNetClassifier

LIMITS = (
    "model.head=gap",
    "data.image_size=64",
    "data.batch_size=32",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",  # per process: 2 x 2 x 32 = the first 128 test images, none padded twice
    "trainer.max_epochs=1",
    "callbacks.progress_bar=null",
)


@pytest.mark.slow
def test_ddp_sim_sweep_fits_and_tests_with_global_metrics(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "alexnet_lightning.train",
        "-m",
        "trainer=ddp_sim",
        "seed=0,1",
        *LIMITS,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=420,
        process=True,  # DDP starts processes of its own
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # the -m sweep ran its two jobs once each (no child re-ran the sweep or hung on the previous job's
    # process group) and only rank 0's directories and files exist
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    run = sweep / "1"
    assert not list(run.glob("*ddp_process*")), "rank 1 wrote its own log into the run directory"
    assert (sweep / "summary.csv").is_file()
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and record["metrics"]["epochs"] == 1

    # the DDP test accuracy is the accuracy over both processes' images: one process on the same 128 agrees
    cfg = OmegaConf.load(run / "config_resolved.yaml")
    datamodule = hydra.utils.instantiate(cfg.data)
    best = run / "checkpoints" / "best.ckpt"
    model = AlexNetClassifier.load_from_checkpoint(best, map_location="cpu", weights_only=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, limit_test_batches=4, logger=False, enable_progress_bar=False)
    (single,) = trainer.test(model, datamodule=datamodule, verbose=False)
    assert record["metrics"]["test/acc"] == pytest.approx(single["test/acc"], abs=1e-6)
    assert record["metrics"]["test/loss"] == pytest.approx(single["test/loss"], abs=1e-4)


@pytest.mark.slow
def test_ddp_spawn_on_cpu_pickles_everything_and_runs(tmp_path: Path) -> None:
    """ddp_spawn pickles the trainer, model, data module and callbacks into fresh processes."""
    run = tmp_path / "run"
    result = run_cli(
        "alexnet_lightning.train",
        "trainer=ddp_sim",
        "trainer.strategy=ddp_spawn",
        *LIMITS,
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=300,
        process=True,  # DDP starts processes of its own
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Can't pickle" not in result.stderr
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and 0.0 <= record["metrics"]["test/acc"] <= 1.0
    assert (run / "checkpoints" / "last.ckpt").is_file()
