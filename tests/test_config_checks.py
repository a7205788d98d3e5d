"""Wrong-typed or out-of-range config values stop a command in one line that names the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import compose_config, run_cli
from readme_commands import run_module_in_process

from alexnet_lightning.config import check_config
from alexnet_lightning.errors import UserError

BAD = [
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc'"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5"),
    ("trainer.devices=0", "trainer.devices=0"),
    ("trainer.devices=-2", "trainer.devices=-2"),
    ("data.batch_size=-1", "data.batch_size=-1"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.batch_size=true", "data.batch_size=True"),
    ("data.image_size=0", "data.image_size=0"),
    ("data.image_size=big", "data.image_size='big'"),
    ("data.num_workers=-1", "data.num_workers=-1"),
    ("data.val_fraction=1.5", "data.val_fraction=1.5"),
    ("data.val_fraction=-0.1", "data.val_fraction=-0.1"),
    ("data.test_fraction=1", "data.test_fraction=1"),
    ("data.test_fraction=abc", "data.test_fraction='abc'"),
    ("data.crop_fraction=0", "data.crop_fraction=0"),
    ("data.crop_fraction=1.2", "data.crop_fraction=1.2"),
    ("model.in_channels=2", "model.in_channels=2"),
    ("optimizer.lr=-1", "optimizer.lr=-1"),
    ("optimizer.lr=0", "optimizer.lr=0"),
    ("optimizer.lr=fast", "optimizer.lr='fast'"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1"),
    ("label_smoothing=1.0", "label_smoothing=1.0"),
    ("label_smoothing=-0.1", "label_smoothing=-0.1"),
]


@pytest.mark.parametrize(("override", "named"), BAD)
def test_a_bad_value_names_its_key(override: str, named: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        check_config(compose_config("config", tmp_path, override))
    assert str(info.value).startswith(f"{named} is invalid: it must be"), str(info.value)
    assert "\n" not in str(info.value)


def test_fractions_that_leave_no_training_images(tmp_path: Path) -> None:
    cfg = compose_config("config", tmp_path, "data.val_fraction=0.5", "data.test_fraction=0.5")
    with pytest.raises(UserError, match=r"data\.val_fraction=0\.5 \+ data\.test_fraction=0\.5 leave no training"):
        check_config(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("data.image_size=auto", "model.in_channels=auto"),  # filled in from the data (another branch)
        ("trainer.max_epochs=-1", "trainer.devices=auto", "data.num_workers=0", "data.test_fraction=0"),
        ("trainer.devices=[0,1]", "optimizer.lr=1", "label_smoothing=0.1", "trainer=ddp_sim"),
        ("experiment=catsdogs",),
    ],
)
def test_good_values_pass(overrides: tuple[str, ...], tmp_path: Path) -> None:
    check_config(compose_config("config", tmp_path, *overrides))


def test_other_commands_check_their_keys(tmp_path: Path) -> None:
    check_config(compose_config("eval", tmp_path, "ckpt_path=x.ckpt"))
    with pytest.raises(UserError, match=r"^data\.batch_size=0 is invalid"):
        check_config(compose_config("eval", tmp_path, "ckpt_path=x.ckpt", "dataset=digits", "data.batch_size=0"))
    with pytest.raises(UserError, match=r"^num_workers=-1 is invalid"):
        check_config(compose_config("eval", tmp_path, "ckpt_path=x.ckpt", "num_workers=-1"))
    with pytest.raises(UserError, match=r"^num_workers=-2 is invalid"):
        check_config(compose_config("predict", tmp_path, "ckpt_path=x.ckpt", "inputs=x", "num_workers=-2"))


@pytest.mark.parametrize("override", ["trainer.max_epochs=abc", "data.val_fraction=1.5"])
def test_the_command_line_gets_one_line_and_exit_code_2(override: str, tmp_path: Path) -> None:
    status, output = run_module_in_process("alexnet_lightning.train", [override, f"hydra.run.dir={tmp_path / 'run'}"],
                                           {}, tmp_path)  # fmt: skip
    assert status == 2, output[-2000:]
    lines = output.strip().splitlines()
    key = override.split("=")[0]
    assert lines[-1].startswith(f"error: {key}=") and "is invalid" in lines[-1], output[-2000:]
    assert "Traceback" not in output


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Pretend this machine shows ``n`` CUDA GPUs (0: none, and no Apple GPU either)."""

    def _show(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    return _show


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("trainer=gpu",), "trainer.accelerator=gpu needs a GPU, but no CUDA GPU is visible: use trainer=default "),
        (("trainer=ddp",), "or trainer=cpu (trainer=ddp_sim simulates DDP on the CPU)"),
    ],
)
def test_a_gpu_trainer_without_a_gpu_is_one_line(gpus, tmp_path: Path, overrides: tuple, message: str) -> None:
    gpus(0)
    with pytest.raises(UserError) as info:
        check_config(compose_config("config", tmp_path, *overrides))
    assert message in str(info.value) and "\n" not in str(info.value)
    check_config(compose_config("config", tmp_path))  # trainer=default: the CPU when there is no GPU


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("4", "trainer.devices=4 asks for 4 GPUs, but this machine shows 2: use trainer.devices=2 or -1 (all)"),
        ("[0,2]", "trainer.devices=[0, 2] names GPU 2, but only GPUs 0 to 1 are visible"),
        ("'0,2'", "trainer.devices=[0, 2] names GPU 2"),
        ("2", None),
        ("-1", None),
        ("'0,1'", None),
    ],
)
def test_more_gpus_than_the_machine_shows(gpus, tmp_path: Path, devices: str, message: str | None) -> None:
    gpus(2)
    cfg = compose_config("config", tmp_path, "trainer=ddp", f"trainer.devices={devices}")
    if message is None:
        check_config(cfg)
    else:
        with pytest.raises(UserError, match=re.escape(message)):
            check_config(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: trainer=gpu is valid here")
def test_trainer_gpu_without_a_gpu_exits_2_in_one_line(tmp_path: Path) -> None:
    result = run_cli("alexnet_lightning.train", "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]  # after the three config lines every run prints
    assert last.startswith("error: trainer.accelerator=gpu needs a GPU, but no CUDA GPU is visible"), last


@pytest.mark.parametrize(
    ("gpus_shown", "bf16", "overrides", "precision"),
    [
        (0, False, (), "32-true"),  # a CPU: full precision
        (1, True, (), "bf16-mixed"),  # an Ampere or newer GPU: bf16, no loss scaling
        (1, False, (), "16-mixed"),  # a V100 or T4: fp16 with loss scaling
        (1, True, ("trainer=cpu",), "32-true"),  # the CPU asked for on a GPU machine
        (1, True, ("trainer.accelerator=cpu",), "32-true"),
        (1, True, ("trainer.precision=32-true",), "32-true"),  # the user's choice wins
    ],
)
def test_the_default_trainer_takes_mixed_precision_on_a_gpu_only(
    gpus, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpus_shown: int, bf16: bool, overrides: tuple, precision: str
) -> None:
    gpus(gpus_shown)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert compose_config("config", tmp_path, *overrides).trainer.precision == precision
