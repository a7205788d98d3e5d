"""Lightning tools exposed in config: Tuner (lr and batch size), compile, channels_last, EMA, profiler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from alexnet_lightning.module import AlexNetClassifier
from alexnet_lightning.train import train

TINY = (
    "model.head=gap",
    "data.image_size=64",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "test=false",
    "logger=csv",
)


@pytest.mark.slow
def test_lr_and_batch_size_finders_set_what_the_run_trains_with(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        *TINY,
        "trainer.limit_train_batches=24",  # the lr finder's 20 steps fit into one epoch
        "tune.lr_find=true",
        "tune.lr_find_steps=20",
        "tune.batch_size=true",
        "tune.batch_size_trials=2",
        "data.batch_size=16",
    )
    train(cfg)
    tuned = json.loads((tmp_path / "tuned.json").read_text())
    assert tuned["batch_size"] in (32, 64)  # doubled from 16; a CPU never runs out of memory first
    assert tuned["lr"] is not None and tuned["lr"] > 0
    assert (tmp_path / "lr_finder.png").stat().st_size > 0
    hparams = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["optimizer"]["lr"] == pytest.approx(tuned["lr"])
    logged = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())  # what every logger was sent
    assert logged["batch_size"] == tuned["batch_size"]


def _module(**model_options) -> AlexNetClassifier:
    model = {"_target_": "alexnet_lightning.models.alexnet.build_alexnet", "head": "gap", **model_options}
    optimizer = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.0}
    return AlexNetClassifier(model, optimizer, None, ["a", "b"], 64, 3, [0.5] * 3, [0.5] * 3)


def test_channels_last_and_compile_keep_checkpoints_those_of_the_plain_network() -> None:
    plain, fast = _module(), _module(channels_last=True, compile=True)
    conv = fast.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert fast.net._compiled_call_impl is not None  # compiled in place: the first call builds the graph
    assert plain.net._compiled_call_impl is None
    assert list(fast.state_dict()) == list(plain.state_dict())  # no "_orig_mod." prefixes


def test_channels_last_forward_matches_the_default_layout() -> None:
    plain, nhwc = _module().eval(), _module(channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain(x), nhwc(x), atol=1e-5)


def test_ema_callback_and_profiler_run(make_cfg, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    cfg = make_cfg(*TINY, "callbacks=ema", "callbacks.ema.update_starting_at_step=0", "trainer.profiler=simple")
    cfg.callbacks.progress_bar = None
    train(cfg)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert "averaging_state" in checkpoint and "current_model_state" in checkpoint  # EMA weights saved
    assert "FIT Profiler Report" in caplog.text
