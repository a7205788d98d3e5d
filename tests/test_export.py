from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import compose_config, write_digit_images
from PIL import Image

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.errors import UserError
from alexnet_lightning.export import export
from alexnet_lightning.inference import Predictor


def _preprocess_without_the_package(path: Path, meta: dict) -> np.ndarray:
    """What a user of the exported file does, from metadata.json alone (PIL and numpy)."""
    size = meta["image_size"]
    image = Image.open(path).convert("L" if meta["in_channels"] == 1 else "RGB")
    scale = meta["resize_size"] / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    mean, std = np.array(meta["mean"], np.float32)[:, None, None], np.array(meta["std"], np.float32)[:, None, None]
    return (array - mean) / std


def test_onnx_export_matches_pytorch_and_runs_without_the_package(tiny_checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, _ = tiny_checkpoint
    images = write_digit_images(tmp_path / "images", per_class=1)
    out = tmp_path / "onnx"
    result = export(compose_config("export", out, f"ckpt_path={ckpt}", "format=onnx", f"inputs={tmp_path}/images"))
    assert result["max_abs_difference"] <= 1e-4
    printed = capsys.readouterr().out
    assert "onnx vs PyTorch, real_batch10: max abs difference of logits" in printed

    meta = json.loads((out / "metadata.json").read_text())
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["image_size"] == 64
    assert set(meta["max_abs_difference"]) == {"random_batch1", "random_batch7", "real_batch10"}

    session = ort.InferenceSession(str(out / meta["file"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    batch = np.stack([_preprocess_without_the_package(p, meta) for p in images])
    logits = session.run(None, {meta["input"]["name"]: batch})[0]
    assert logits.shape == (10, 10)
    predictor = Predictor(load_classifier(ckpt), torch.device("cpu"))
    expected = predictor.probabilities(torch.stack([predictor.preprocess(p) for p in images]))
    probs = torch.from_numpy(logits).softmax(1)
    assert torch.allclose(probs, expected, atol=0.02)  # PIL's resize vs torchvision's: close, not bit-equal


def test_torch_export_loads_with_torch_alone_without_deprecation_warnings(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    out = tmp_path / "pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # torch.jit's deprecation is a FutureWarning
        warnings.simplefilter("error", DeprecationWarning)
        result = export(compose_config("export", out, f"ckpt_path={ckpt}", "format=torch_export"))
    assert result["max_abs_difference"] <= 1e-4
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["file"] == "model.pt2" and meta["format"] == "torch_export"
    program = torch.export.load(out / meta["file"]).module()
    x = torch.randn(5, 1, 64, 64)  # a batch size the export never saw: the batch axis is dynamic
    with torch.no_grad():
        assert torch.allclose(program(x), load_classifier(ckpt)(x), atol=1e-5)
    with pytest.raises(UserError, match=r"format=torchscript was removed: TorchScript \(torch.jit\) is deprecated"):
        export(compose_config("export", tmp_path / "ts", f"ckpt_path={ckpt}", "format=torchscript"))


def test_export_refuses_an_export_outside_tolerance_and_unknown_formats(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    with pytest.raises(UserError, match=r"format=tflite is unknown: use onnx or torch_export"):
        export(compose_config("export", tmp_path, f"ckpt_path={ckpt}", "format=tflite"))
    with pytest.raises(UserError, match=r"onnx export differs from PyTorch by .* > atol=1e-20"):
        export(compose_config("export", tmp_path, f"ckpt_path={ckpt}", "format=onnx", "atol=1e-20"))
