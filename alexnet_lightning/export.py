"""Export a checkpoint to ONNX or torch.export, check it against PyTorch, and describe it in metadata.json.

python -m alexnet_lightning.export ckpt_path=FILE format=onnx|torch_export [inputs=FOLDER_OF_IMAGES]

The exported network takes a normalized float image batch (any batch size) and returns logits;
metadata.json says how to preprocess, so the file is usable without this package.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from alexnet_lightning.atomic import atomic_path, write_json
from alexnet_lightning.command import hydra_command
from alexnet_lightning.console import shown_path
from alexnet_lightning.errors import UserError
from alexnet_lightning.inference import Predictor, load_images

FORMATS = {"onnx": "model.onnx", "torch_export": "model.pt2"}
REMOVED = {"torchscript": "TorchScript (torch.jit) is deprecated in PyTorch 2: use format=torch_export or format=onnx"}
Runner = Callable[[torch.Tensor], np.ndarray]


def export_onnx(net: nn.Module, sample: torch.Tensor, path: Path, opset: int) -> Runner:
    """ONNX with a dynamic batch axis, run back with onnxruntime."""
    import onnxruntime as ort

    batch = torch.export.Dim("batch", min=1, max=65536)
    for name in ("onnx_ir", "onnxscript"):  # their INFO lines are about graph passes, not for users
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings(), atomic_path(path) as partial:
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (sample,),
            str(partial),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["logits"], {"image": x.numpy()})[0]


def export_program(net: nn.Module, sample: torch.Tensor, path: Path) -> Runner:
    """A ``torch.export`` ExportedProgram (.pt2) with a dynamic batch axis, loaded back with ``torch.export.load``.

    PyTorch's recommended format since TorchScript's deprecation: it runs with torch alone, and it is
    what AOTInductor (``torch._inductor.aoti_compile_and_package``) and ExecuTorch compile from.
    """
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(net, (sample,), dynamic_shapes=({0: batch},))
    with atomic_path(path) as partial:
        torch.export.save(program, partial)
    loaded = torch.export.load(path).module()

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return loaded(x).numpy()

    return run


def export(cfg: DictConfig) -> dict[str, Any]:
    if cfg.format in REMOVED:
        raise UserError(f"format={cfg.format} was removed: {REMOVED[cfg.format]}")
    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format} is unknown: use {' or '.join(FORMATS)}")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.load(cfg.ckpt_path, "cpu")
    hp, net, shape = predictor.model.hparams, predictor.model.net, predictor.input_shape
    path = out / FORMATS[cfg.format]
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, *shape, generator=generator)
    run = export_onnx(net, sample, path, cfg.opset) if cfg.format == "onnx" else export_program(net, sample, path)

    checks = {f"random_batch{n}": torch.randn(n, *shape, generator=generator) for n in (1, 7)}
    real = load_images(predictor, cfg.inputs, cfg.check_images) if cfg.inputs else None
    if real is not None:
        checks[f"real_batch{len(real)}"] = real
    differences = {}
    with torch.no_grad():
        for name, x in checks.items():
            expected = net(x).numpy()
            got = run(x)
            if got.shape != expected.shape:
                raise UserError(f"{cfg.format} export returns shape {got.shape} for {name}, PyTorch {expected.shape}")
            differences[name] = float(np.abs(got - expected).max())
            print(f"{cfg.format} vs PyTorch, {name}: max abs difference of logits {differences[name]:.3e}")
    if real is None:
        print("no real images checked: pass inputs=FOLDER (or an image or a glob) to check on real inputs too")
    worst = max(differences.values())
    if worst > cfg.atol:
        raise UserError(f"{cfg.format} export differs from PyTorch by {worst:.3e} > atol={cfg.atol}: do not use it")

    metadata = {
        "format": cfg.format,
        "file": path.name,
        "input": {"name": "image", "shape": ["batch", *shape], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", len(hp.class_names)], "apply": "softmax over axis 1"},
        "class_names": list(hp.class_names),
        "image_size": hp.image_size,
        "resize_size": round(hp.image_size / hp.crop_fraction),  # the shorter side before the center crop
        "in_channels": hp.in_channels,
        "mean": list(hp.mean),
        "std": list(hp.std),
        "preprocessing": (
            f"decode to {'grayscale' if hp.in_channels == 1 else 'RGB'}, resize the shorter side to "
            f"{round(hp.image_size / hp.crop_fraction)} px (resize_size; bilinear, antialiased), "
            f"center-crop {hp.image_size}x{hp.image_size}, "
            "scale to [0, 1], subtract mean and divide by std per channel, layout NCHW"
        ),
        "max_abs_difference": differences,
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
    }
    write_json(out / "metadata.json", metadata)
    print(f"wrote {shown_path(path)} ({path.stat().st_size / 2**20:.1f} MiB) and {shown_path(out / 'metadata.json')}")
    return {"path": str(path), "max_abs_difference": worst}


main = hydra_command("export", export)


if __name__ == "__main__":
    main()
