"""logger=mlflow, logger=wandb, logger=many: real MLflow and W&B, offline, read back with their own clients."""

from __future__ import annotations

import http.server
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import compose_config, free_port, run_cli
from omegaconf import OmegaConf, open_dict

from alexnet_lightning import resolvers, trackers
from alexnet_lightning.errors import UserError
from alexnet_lightning.train import train

TINY = (
    "model.head=gap",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
)


@pytest.fixture(scope="module")
def many_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """One tiny digits run with logger=many (TensorBoard, MLflow, W&B), without W&B credentials."""
    out = tmp_path_factory.mktemp("many")
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "MLFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        mp.setenv("NETRC", str(home / ".netrc"))  # no file: no `wandb login` entry either
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(name, str(home / name.lower()))
        cfg = compose_config("config", out, *TINY, "logger=many")
        with open_dict(cfg):
            cfg.callbacks.progress_bar = None
        metrics = train(cfg)
    return out, metrics


# The tiny run is ~15 s of CPU (36 s on the busy 2-core machine): training, MLflow's first import and SQLite
# schema (its Alembic migrations) and W&B's service start; both tests below share it.
@pytest.mark.slow
def test_mlflow_store_holds_metric_histories_hyperparameters_and_checkpoint_paths(many_run) -> None:
    from mlflow.tracking import MlflowClient

    out, metrics = many_run
    client = MlflowClient(f"sqlite:///{out}/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("alexnet-lightning")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert len(history) == metrics["epochs"] == 2 and len({m.step for m in history}) == 2  # one point an epoch
    assert history[-1].value == pytest.approx(metrics["val/acc"])
    assert {"train/loss", "val/loss", "test/acc"} <= set(run.data.metrics)
    assert run.data.params["optimizer/lr"] == "0.001" and run.data.params["model/head"] == "gap"
    assert run.data.params["max_epochs"] == "2" and run.data.params["batch_size"] == "16"
    tags = run.data.tags
    assert Path(tags["best_checkpoint"]) == out / "checkpoints" / "best.ckpt"
    assert Path(tags["last_checkpoint"]) == out / "checkpoints" / "last.ckpt"
    assert Path(tags["best_checkpoint"]).is_file() and Path(tags["last_checkpoint"]).is_file()
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["curves.png"]
    artifacts = list((out / "mlflow" / "artifacts").rglob("curves.png"))  # in the run folder, not ./mlruns
    assert len(artifacts) == 1 and artifacts[0].read_bytes() == (out / "curves.png").read_bytes()


@pytest.mark.slow
def test_wandb_writes_a_finished_offline_run_folder(many_run) -> None:
    import wandb

    out, _ = many_run
    [run_dir] = (out / "wandb").glob("offline-run-*")
    [records] = run_dir.glob("run-*.wandb")
    assert records.stat().st_size > 0
    assert list((run_dir / "files" / "media" / "images").glob("curves_*.png"))
    assert wandb.run is None  # finished with the training run: the next run gets its own
    assert (out / "tensorboard").is_dir()  # logger=many: TensorBoard too


@pytest.mark.parametrize(
    ("logger", "key", "name"), [("mlflow", "mlflow", "MLflow"), ("many", "wandb", "Weights & Biases")]
)
def test_missing_tracker_package_names_the_extra(monkeypatch, tmp_path: Path, logger: str, key: str, name: str) -> None:
    monkeypatch.setitem(sys.modules, key, None)  # `import mlflow` (or wandb) fails as if not installed
    result = run_cli("alexnet_lightning.train", f"logger={logger}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    line = f"error: logger.{key} needs {name}"
    assert line in result.stderr and "pip install 'alexnet-lightning[trackers]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "split.json").exists()  # stopped before reading the data


def test_mlflow_server_that_does_not_answer_stops_the_run_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there; MLflow's own retries would take minutes
    started = time.monotonic()
    result = run_cli("alexnet_lightning.train", *TINY, "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: logger.mlflow.tracking_uri=http://127.0.0.1:{port} does not answer (" in result.stderr
    assert "start the server (mlflow server --host HOST --port PORT)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "split.json").exists() and time.monotonic() - started < 60  # before the data is read


def test_mlflow_store_that_fails_during_the_run_stops_it_with_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(trackers, "require_servers", lambda loggers: None)  # the server answered, then went away
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default retries for minutes
    server = f"logger.mlflow.tracking_uri=http://127.0.0.1:{free_port()}"
    result = run_cli("alexnet_lightning.train", *TINY, "logger=mlflow", server, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert "error: MLflow failed: API request to http://127.0.0.1:" in result.stderr
    assert "check logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI)" in result.stderr
    assert "Traceback" not in result.stderr


def test_wandb_is_offline_without_credentials(monkeypatch, tmp_path: Path) -> None:
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / ".netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolvers.wandb_mode() == "offline"  # no file
    netrc.write_text("machine example.com login user password secret\n")
    netrc.chmod(0o600)
    assert resolvers.wandb_mode() == "offline"  # an entry, but not W&B's
    netrc.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert resolvers.wandb_mode() == "online"  # what `wandb login` writes
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolvers.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolvers.wandb_mode() == "disabled"  # the user's own setting wins


def test_mlflow_store_defaults_to_the_run_folder_and_follows_a_given_tracking_uri(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow = compose_config("config", tmp_path, "logger=mlflow").logger.mlflow
    assert mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert mlflow.artifact_location == f"{tmp_path}/mlflow/artifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow/all.db")  # a store shared by many runs
    mlflow = compose_config("config", tmp_path, "logger=mlflow").logger.mlflow
    assert (mlflow.tracking_uri, mlflow.artifact_location) == ("sqlite:////srv/mlflow/all.db", "/srv/mlflow/artifacts")
    server = "logger.mlflow.tracking_uri=http://127.0.0.1:5000"
    mlflow = compose_config("config", tmp_path, "logger=mlflow", server).logger.mlflow
    assert mlflow.tracking_uri == "http://127.0.0.1:5000" and mlflow.artifact_location is None  # the server's choice


def test_a_server_that_answers_even_with_an_error_status_passes_the_check() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # 501 to every GET
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        trackers.require_servers(OmegaConf.create({"mlflow": {"_target_": "x.MLFlowLogger", "tracking_uri": uri}}))
    finally:
        server.shutdown()
    down = OmegaConf.create(
        {"mlflow": {"_target_": "x.MLFlowLogger", "tracking_uri": f"http://127.0.0.1:{free_port()}"}}
    )
    with pytest.raises(UserError, match="does not answer"):
        trackers.require_servers(down)
