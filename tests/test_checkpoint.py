from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.errors import UserError


class CreatesAFile:
    """A pickle payload: unpickling it calls open(marker, 'w'), i.e. runs code and creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def malicious_checkpoint(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model": CreatesAFile(marker)}}, path)
    return path


def test_the_malicious_file_really_runs_code_when_loaded_unsafely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path, marker)
    torch.load(path, weights_only=False)  # what a blog script does: the payload runs
    assert marker.exists()


def test_checkpoint_with_pickled_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path, marker)
    with pytest.raises(UserError, match=r"carries pickled code or objects.*refused") as info:
        load_classifier(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_cli_refuses_malicious_checkpoint_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path, marker)
    result = run_cli(
        "alexnet_lightning.predict", f"ckpt_path={path}", f"inputs={tmp_path}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint") and "pickled code" in lines[0]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "not a readable PyTorch file"),
        (b"not a zip at all", "not a readable PyTorch file"),
    ],
)
def test_missing_or_corrupt_checkpoint_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "model.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_classifier(path)


def test_plain_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="has no state_dict"):
        load_classifier(path)


def test_truncated_checkpoint_is_refused(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    data = ckpt.read_bytes()
    path = tmp_path / "half.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable PyTorch file"):
        load_classifier(path)


def test_loads_weights_and_everything_needed_from_the_checkpoint_alone(tiny_checkpoint) -> None:
    ckpt, _ = tiny_checkpoint
    model = load_classifier(ckpt)
    raw = torch.load(ckpt, weights_only=True)
    assert not model.training
    assert model.hparams.class_names == [str(i) for i in range(10)]
    assert (model.hparams.image_size, model.hparams.in_channels, len(model.hparams.mean)) == (64, 1, 1)
    for key, value in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert pickle.dumps(dict(model.hparams))  # plain containers only
