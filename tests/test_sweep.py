"""Sweeps: -m grids and Optuna searches end with a summary; a failing run is a row, not the end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from alexnet_lightning import sweep

TINY = ("trainer=debug", "callbacks.progress_bar=null")


def _strict_json(path: Path) -> dict:
    """Parse as any JSON reader would: a bare NaN or Infinity is an error."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _summary(sweep_dir: Path) -> pd.DataFrame:
    for name in ("summary.csv", "summary.md", "summary.png"):
        assert (sweep_dir / name).stat().st_size > 0, name
    return pd.read_csv(sweep_dir / "summary.csv", keep_default_na=False, na_values=[""])


@pytest.mark.slow
def test_grid_sweep_summarizes_every_run_and_survives_a_failing_one(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli("alexnet_lightning.train", "-m", "optimizer.lr=1e-3,-1", *TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1, result.stderr[-3000:]  # after both runs and the summary
    assert result.stderr.splitlines()[-1] == f"sweep: 1 of 2 runs failed; their errors are in {sweep / 'summary.md'}"
    frame = _summary(sweep)
    assert list(frame.run) == [0, 1]
    ok, failed = frame.iloc[0], frame.iloc[1]
    assert ok.status == "ok" and ok["test/acc"] >= 0 and ok.epochs == 1 and ok.wall_s > 0
    assert ok.run_dir == str(sweep / "0") and "optimizer.lr=0.001" in ok.overrides
    assert failed.status == "failed" and math.isnan(failed.objective)
    assert _strict_json(sweep / "1" / "metrics.json")["objective"] is None
    assert failed.error == "optimizer.lr=-1 is invalid: it must be a number > 0"
    assert "error: optimizer.lr=-1 is invalid" in result.stderr and "Traceback" not in result.stderr
    assert f"best run 0 (optimizer.lr=0.001 {' '.join(TINY)})" in result.stdout
    assert "Best run: **0**" in (sweep / "summary.md").read_text()


def test_a_finished_sweep_run_keeps_best_ckpt_and_drops_last_unless_asked(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    short = ("trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false")
    args = ("-m", "sweep_keeps_last=false,true", *short, "logger=csv", "callbacks.progress_bar=null")
    result = run_cli("alexnet_lightning.train", *args, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sweep / "0/checkpoints/best.ckpt").is_file() and not (sweep / "0/checkpoints/last.ckpt").exists()
    assert (sweep / "1/checkpoints/best.ckpt").is_file() and (sweep / "1/checkpoints/last.ckpt").is_file()


@pytest.mark.slow
def test_optuna_search_is_seeded_and_reports_best_params(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    args = ("hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY, f"hydra.sweep.dir={sweep}")
    result = run_cli("alexnet_lightning.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in ("setup plugin alembic", "A new study created", "Study name:", "Sampler:"):  # plugin set-up
        assert noise not in result.stdout + result.stderr, noise
    frame = _summary(sweep)
    assert len(frame) == 2 and (frame.status == "ok").all()
    searched = ("optimizer=", "optimizer.lr=", "optimizer.weight_decay=", "model.dropout=", "data.batch_size=")
    assert all(key in frame.overrides[0] for key in searched), frame.overrides[0]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == frame.objective.max()
    assert "Optuna's best parameters" in (sweep / "summary.md").read_text()


def _compose_hydra(*overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            return compose("config", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_optuna_config_composes_with_an_in_memory_study() -> None:
    sweeper = _compose_hydra("hparams_search=optuna").hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.storage is None
    assert sweeper.sampler._target_.endswith("TPESampler") and sweeper.sampler.seed == 0
    assert sweeper.direction == "maximize"


def test_slurm_launcher_config_composes_and_validates() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="install the 'launchers' extra")
    cfg = _compose_hydra("hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["nodes"] == 2
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"]  # one DDP process per GPU
    # the plugin's schema checks keys and types when composing
    with pytest.raises(ConfigCompositionException, match=r"hydra\.launcher\.nodes=many"):
        _compose_hydra("hydra/launcher=slurm", "hydra.launcher.nodes=many")


def test_joblib_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="install the 'launchers' extra")
    assert _compose_hydra("hydra/launcher=joblib").hydra.launcher._target_.endswith("JoblibLauncher")


def test_swept_parameters_are_the_overrides_that_vary_as_numbers() -> None:
    frame = pd.DataFrame(
        {"overrides": ["optimizer=adamw optimizer.lr=0.001 seed=0", "optimizer=sgd optimizer.lr=1e-4 seed=0"]}
    )
    params = sweep.swept_parameters(frame)
    assert list(params.columns) == ["optimizer", "optimizer.lr"]
    assert list(params["optimizer.lr"]) == [0.001, 0.0001] and list(params.optimizer) == ["adamw", "sgd"]


def _record(run: Path, status: str, objective: str, val_acc: str) -> None:
    """A metrics.json as record_run writes it; values as JSON text (null now, NaN in older files)."""
    run.mkdir(parents=True)
    error = '"boom"' if status == "failed" else "null"
    (run / "metrics.json").write_text(
        f'{{"status": "{status}", "error": {error}, "overrides": ["seed={run.name}"], '
        f'"metrics": {{"val/acc": {val_acc}}}, "objective": {objective}, "wall_s": 1.5, "run_dir": "{run}"}}'
    )


def test_a_sweep_with_failed_runs_exits_1_after_its_summary(tmp_path: Path, capsys) -> None:
    _record(tmp_path / "0", "ok", "0.9", "0.9")
    _record(tmp_path / "1", "failed", "NaN", "NaN")  # written before metrics.json became valid JSON
    _record(tmp_path / "2", "failed", "null", "null")
    config = OmegaConf.create({"optimized_metric": "val/acc", "hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(SystemExit) as exit_:
        sweep.SweepSummary().on_multirun_end(config)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"sweep: 2 of 3 runs failed; their errors are in {tmp_path / 'summary.md'}\n"
    frame = _summary(tmp_path)
    assert list(frame.status) == ["ok", "failed", "failed"] and frame.objective[0] == 0.9
    assert frame.objective[1:].isna().all() and frame["val/acc"][1:].isna().all()
    assert "Best run: **0**" in (tmp_path / "summary.md").read_text()
    assert not list(tmp_path.glob(".*.partial"))


def test_a_sweep_without_failures_ends_normally(tmp_path: Path) -> None:
    _record(tmp_path / "0", "ok", "0.9", "0.9")
    config = OmegaConf.create({"optimized_metric": "val/acc", "hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweep.SweepSummary().on_multirun_end(config)
    assert (tmp_path / "summary.md").is_file()


def test_metrics_json_is_valid_json_with_null_for_nan(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"optimized_metric": "val/acc_best", "paths": {"output_dir": str(tmp_path)}})
    with sweep.record_run(cfg) as record:
        record.metrics = {"val/acc": 0.5, "val/loss": math.inf, "epochs": 3, "warnings": ["not learning"]}
    written = _strict_json(tmp_path / "metrics.json")
    assert written["objective"] is None and math.isnan(record.objective)  # the metric is missing
    assert written["metrics"] == {"val/acc": 0.5, "val/loss": None, "epochs": 3, "warnings": ["not learning"]}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # written atomically: no partial file left
