from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF, compose_config, run_cli
from readme_commands import run_module_in_process

from alexnet_lightning.module import AlexNetClassifier
from alexnet_lightning.train import train

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml"))
PROGRESS_OFF = "callbacks.progress_bar=null"


@pytest.mark.parametrize("model", MODELS)
def test_debug_run_every_model(make_cfg, model: str) -> None:
    metrics = train(make_cfg(f"model={model}", "trainer=debug"))
    assert "test/acc" in metrics


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_debug_run_every_optimizer_and_scheduler(make_cfg, optimizer: str, scheduler: str) -> None:
    cfg = make_cfg(f"optimizer={optimizer}", f"scheduler={scheduler}", "trainer=debug", "model.head=gap")
    assert "train/loss" in train(cfg)


def test_weight_decay_skips_biases(make_cfg) -> None:
    cfg = make_cfg("trainer=debug", "model.head=gap", "model.norm=batchnorm", "optimizer=sgd")
    train(cfg)
    module = AlexNetClassifier(**_hparams(cfg))
    optimizer = module.configure_optimizers()["optimizer"]
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == cfg.optimizer.weight_decay and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])


def _hparams(cfg) -> dict:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True)
    return {
        "model": plain["model"],
        "optimizer": plain["optimizer"],
        "scheduler": None,
        "class_names": [str(i) for i in range(10)],
        "image_size": 72,
        "in_channels": 1,
        "mean": [0.5],
        "std": [0.5],
    }


@pytest.mark.slow
def test_real_training_on_digits_learns(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model.head=gap", "optimizer.lr=1e-3", "trainer.max_epochs=4", "logger=csv")
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.8, metrics  # chance is 0.1
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-6
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "split.json").is_file() and (tmp_path / "config_resolved.yaml").is_file()


def test_checkpoint_reloads_with_weights_only_and_predicts_the_same(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model.head=gap", "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "test=false")
    train(cfg)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain containers only
    hp = raw["hyper_parameters"]
    assert hp["class_names"] == [str(i) for i in range(10)]
    # digits' 8 px images are enlarged to the network's minimum
    assert hp["image_size"] == 64 and hp["in_channels"] == 1 and len(hp["mean"]) == 1

    first = AlexNetClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    second = AlexNetClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    x = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        p1, p2 = first.predict_step(x, 0), second.predict_step(x, 0)
    assert p1.shape == (4, 10) and torch.allclose(p1.sum(1), torch.ones(4))
    assert torch.equal(p1, p2)
    for key, value in raw["state_dict"].items():
        assert torch.equal(first.state_dict()[key], value)


def _best_state(checkpoint: dict) -> dict:
    """The state of the checkpoint callback that keeps best.ckpt, as saved in a checkpoint."""
    (state,) = (v for v in checkpoint["callbacks"].values() if isinstance(v, dict) and v.get("monitor"))
    return state


@pytest.mark.parametrize("into", ["same", "new"])  # the run directory after a crash, and Hydra's default
def test_resume_from_last_checkpoint(tmp_path: Path, into: str) -> None:
    common = ("model.head=gap", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false")
    train(compose_config("config", tmp_path, *common, "trainer.max_epochs=1", PROGRESS_OFF))
    last, best = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "best.ckpt"
    first = torch.load(last, weights_only=True)
    # as if the first run's best epoch had been perfect: no resumed epoch may replace its best.ckpt
    state = _best_state(first)
    state["best_model_score"] = state["kth_value"] = torch.tensor(1.0)
    state["best_k_models"] = {path: torch.tensor(1.0) for path in state["best_k_models"]}
    torch.save(first, last)
    out = tmp_path if into == "same" else tmp_path / "resumed"
    train(compose_config("config", out, *common, "trainer.max_epochs=2", f"ckpt_path={last}", PROGRESS_OFF))
    resumed = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert (first["global_step"], resumed["global_step"]) == (2, 4)  # the second run continued, not restarted
    assert resumed["optimizer_states"][0]["state"], "optimizer state travels with the checkpoint"
    assert float(_best_state(resumed)["best_model_score"]) == 1.0, "the best score travels with last.ckpt"
    assert _best_state(resumed)["best_model_path"] == str(best) and torch.load(best, weights_only=True)["epoch"] == 0
    written = ["best.ckpt", "last.ckpt"] if into == "same" else ["last.ckpt"]  # no best-v1.ckpt, no worse best.ckpt
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == written


def test_best_checkpoint_is_the_best_epoch_and_the_end_names_both(tmp_path: Path, monkeypatch, capsys) -> None:
    import pandas as pd

    monkeypatch.chdir(tmp_path)  # as under `make train`: the run directory inside the current one
    args = ("model.head=gap", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "logger=csv")
    metrics = train(compose_config("config", tmp_path / "run", *args, "trainer.max_epochs=3", PROGRESS_OFF))
    log = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv").dropna(subset=["val/acc"])
    best_epoch = int(log.epoch[log["val/acc"].idxmax()])  # the first epoch reaching the highest val/acc
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    saved = torch.load(best, weights_only=True)
    assert saved["epoch"] == best_epoch
    # best.ckpt: weights and hyperparameters only; last.ckpt: everything a resume needs (AdamW's two moments)
    last = torch.load(best.parent / "last.ckpt", weights_only=True)
    assert "optimizer_states" not in saved and last["optimizer_states"][0]["state"]
    assert saved["hyper_parameters"] == last["hyper_parameters"]
    weights = sum(t.numel() * t.element_size() for t in saved["state_dict"].values())
    assert best.stat().st_size < 1.2 * weights < (best.parent / "last.ckpt").stat().st_size / 2.5
    end = capsys.readouterr().out.strip().splitlines()[-2:]
    assert end == [
        f"best checkpoint: run/checkpoints/best.ckpt (val/acc {metrics['val/acc_best']:.4f}, "
        f"epoch {best_epoch + 1} of 3); last: run/checkpoints/last.ckpt",
        f"test/acc: {metrics['test/acc']:.4f}  (run directory: run)",
    ]
    # a second run into the same folder replaces best.ckpt instead of adding best-v1.ckpt
    train(compose_config("config", tmp_path / "run", *args, "trainer.max_epochs=1", PROGRESS_OFF, "test=false"))
    assert sorted(p.name for p in best.parent.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(best, weights_only=True)["epoch"] == 0


def test_cli_debug_run_exits_zero(tmp_path: Path) -> None:
    result = run_cli("alexnet_lightning.train", "trainer=debug", f"hydra.run.dir={tmp_path}", process=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test/acc:" in result.stdout
    assert "\noverrides: trainer=debug\n" in result.stdout and "CONFIG" not in result.stdout  # the short config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset=nope", "Could not find 'dataset/nope'"),
        ("optimizer.lr=-1", "error: optimizer.lr=-1 is invalid: it must be a number > 0"),
        ("++optimizer.betas=[0.9,1.5]", "error: optimizer config rejected: Invalid beta parameter at index 1: 1.5"),
        ("model.head=wide", "error: model.head='wide' is unknown: use fc or gap"),
    ],
)
def test_cli_bad_config_fails_with_a_clear_message(tmp_path: Path, override: str, message: str) -> None:
    # the command's own __main__ with these arguments, in this process (tests/test_cli_debug_run_exits_zero
    # runs a real process): the same exit status and output, without 8 s of imports per case
    args = [override, "trainer=debug", f"hydra.run.dir={tmp_path}"]
    status, output = run_module_in_process("alexnet_lightning.train", args, {}, tmp_path)
    assert status != 0
    assert message in output
    assert "Traceback" not in output


def test_too_small_images_fail_before_training(make_cfg) -> None:
    from alexnet_lightning.errors import UserError

    with pytest.raises(UserError, match=r"data\.image_size=48 is too small .*model\.stem=small"):
        train(make_cfg("model=alexnet_original", "model.stem=imagenet", "data.image_size=48", "trainer=debug"))


def test_latest_names_the_last_finished_run(tmp_path: Path) -> None:
    args = ("model.head=gap", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
            "logger=csv", "test=false", PROGRESS_OFF)  # fmt: skip
    latest = tmp_path / "outputs" / "train" / "latest"
    for time in ("10-00-00", "10-05-00"):
        train(compose_config("config", tmp_path / "outputs" / "train" / "2026-11-26" / time, *args))
        assert latest.is_symlink() and latest.resolve() == (latest.parent / "2026-11-26" / time).resolve()
        assert (latest / "checkpoints" / "best.ckpt").is_file()
    train(compose_config("config", tmp_path / "elsewhere", *args))  # not a DATE/TIME run directory: no link
    assert latest.resolve().name == "10-05-00" and not (tmp_path / "latest").exists()


def test_a_run_without_a_logger_trains(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("~logger", "model.head=gap", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                   "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1")  # fmt: skip
    metrics = train(cfg)  # Lightning's learning-rate monitor, a default callback, refuses a trainer without a logger
    assert (
        "test/acc" in metrics
        and (tmp_path / "checkpoints" / "last.ckpt").is_file()
        and (tmp_path / "curves.png").is_file()
    )
    assert not (tmp_path / "tensorboard").exists()
