"""Resume with more epochs, a seed repeats a run, atomic checkpoint files (killed and resumed: test_faults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR

from alexnet_lightning.checkpoint_io import AtomicCheckpointIO
from alexnet_lightning.data.order import EpochShuffle
from alexnet_lightning.schedule import resize_cosine, resize_one_cycle
from alexnet_lightning.train import train

EPOCHS = 5
BATCHES = 6
COMMON = (
    "model.head=gap",
    "model.norm=none",  # the network the resume tolerance below was measured on
    "data.image_size=64",
    f"+trainer.limit_train_batches={BATCHES}",
    "+trainer.limit_val_batches=2",
    f"trainer.max_epochs={EPOCHS}",
    "callbacks.progress_bar=null",
    "test=false",
)


def test_same_seed_gives_the_same_run_on_cpu(make_cfg) -> None:
    args = (*COMMON, "trainer.max_epochs=2", "logger=csv", "seed=7")
    first, second = train(make_cfg(*args)), train(make_cfg(*args))
    assert first["val/loss"] == pytest.approx(second["val/loss"], abs=1e-6)
    assert first["train/loss"] == pytest.approx(second["train/loss"], abs=1e-6)


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_training_order_follows_the_epoch_not_the_random_generator() -> None:
    order = EpochShuffle(50, seed=3)
    order.set_epoch(2)
    first = list(order)
    torch.manual_seed(123)  # a resumed process's generator is somewhere else: the order is not
    again = EpochShuffle(50, seed=3)
    again.set_epoch(2)
    assert list(again) == first and sorted(first) == list(range(50))
    order.set_epoch(3)
    assert list(order) != first


EXTEND = (
    "model.head=gap",
    "model.stem=small",
    "data.image_size=32",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "test=false",
    "logger=csv",
)


def _weights(path: Path) -> torch.Tensor:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return torch.cat([v.flatten().float() for k, v in state.items() if k.startswith("net.")])


@pytest.mark.slow  # three short runs, about 20 s
def test_resume_with_more_epochs_extends_the_cosine_schedule(tmp_path: Path) -> None:
    first = tmp_path / "first"
    cfg = compose_config("config", first, *EXTEND, "trainer.max_epochs=1")
    cfg.callbacks.progress_bar = None
    train(cfg)
    start = first / "checkpoints" / "last.ckpt"
    assert torch.load(start, weights_only=True)["lr_schedulers"][0]["T_max"] == 1
    before = _weights(start)

    # a new run directory (the default: Hydra makes one per run) and the same one (after a crash)
    for out in (tmp_path / "longer", first):
        cfg = compose_config("config", out, *EXTEND, "trainer.max_epochs=2", f"ckpt_path={start}")
        cfg.callbacks.progress_bar = None
        metrics = train(cfg)
        # epoch 2 of 2 trains at the closed form, base_lr * (1 + cos(pi * 1/2)) / 2, not at the old schedule's 0
        assert metrics["lr-AdamW/weights"] == pytest.approx(cfg.optimizer.lr / 2, rel=1e-6)
        last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert last["epoch"] == 1 and last["global_step"] == 6 and last["lr_schedulers"][0]["T_max"] == 2
        assert not torch.allclose(_weights(out / "checkpoints" / "last.ckpt"), before)
        assert {p.name for p in (out / "checkpoints").iterdir()} <= {"best.ckpt", "last.ckpt"}  # no best-v1.ckpt


def test_resized_schedules_continue_as_a_fresh_run_of_the_new_length() -> None:
    def optimizer() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)

    def lrs(scheduler, steps: int) -> list[float]:
        out = []
        for _ in range(steps):
            scheduler.optimizer.step()
            scheduler.step()
            out.append(scheduler.optimizer.param_groups[0]["lr"])
        return out

    old = CosineAnnealingLR(optimizer(), T_max=2)
    lrs(old, 2)  # the old run's 2 epochs: at 0
    resize_cosine(old, 5)
    fresh = CosineAnnealingLR(optimizer(), T_max=5)
    lrs(fresh, 2)
    assert old.get_last_lr() == pytest.approx(fresh.get_last_lr())
    assert lrs(old, 3) == pytest.approx(lrs(fresh, 3))

    for three_phase in (False, True):
        old = OneCycleLR(optimizer(), max_lr=0.1, total_steps=10, three_phase=three_phase)
        lrs(old, 4)
        resize_one_cycle(old, 30, pct_start=0.3, three_phase=three_phase)
        fresh = OneCycleLR(optimizer(), max_lr=0.1, total_steps=30, three_phase=three_phase)
        lrs(fresh, 4)
        assert old.optimizer.param_groups[0]["lr"] == pytest.approx(fresh.optimizer.param_groups[0]["lr"])
        assert old.optimizer.param_groups[0]["momentum"] == pytest.approx(fresh.optimizer.param_groups[0]["momentum"])
        assert lrs(old, 26) == pytest.approx(lrs(fresh, 26))
