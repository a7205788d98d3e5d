"""The Python API: what README.md's example does, run as written, and each function's promises."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, compose_config, write_digit_images
from PIL import Image

import alexnet_lightning
from alexnet_lightning import api
from alexnet_lightning.errors import UserError
from alexnet_lightning.predict import predict as predict_command
from alexnet_lightning.samples import write_samples

README = (REPO / "README.md").read_text()
# Appended to the example's overrides, as tests/test_readme.py appends to the README's commands: a shorter
# training (the whole test split stays, so evaluate can reproduce training's test/acc) and a quicker eval.
TRAIN_SHORTER = (
    "++trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "++callbacks.progress_bar=null",
    "logger=csv",
)
EVAL_SHORTER = ("speed_seconds=0.1", "num_workers=0")


def readme_python_example() -> str:
    section = README[README.index("\n## Python API\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write_samples(Path("outputs/samples/digits"))  # what `make samples` writes
    train, evaluate = api.train, api.evaluate
    monkeypatch.setattr(alexnet_lightning, "train", lambda o=None, **kw: train([*(o or []), *TRAIN_SHORTER], **kw))
    monkeypatch.setattr(alexnet_lightning, "evaluate", lambda c, o=None, **kw: evaluate(c, [*(o or []), *EVAL_SHORTER]))

    namespace: dict = {}
    exec(compile(readme_python_example(), "README.md (Python API)", "exec"), namespace)

    result = namespace["result"]
    assert isinstance(result, api.TrainResult) and result.metrics["epochs"] == 1
    assert result.output_dir.parent.parent == tmp_path / "outputs" / "train"  # outputs/train/DATE/TIME
    assert (tmp_path / "outputs" / "train" / "latest").resolve() == result.output_dir.resolve()
    assert result.best_checkpoint == result.output_dir / "checkpoints" / "best.ckpt"
    assert (result.output_dir / "metrics.json").is_file()  # the command's record of the run
    table = namespace["table"]
    assert list(table.true) == ["3", "7"] and table.probability.between(0, 1).all()
    assert namespace["metrics"]["test/acc"] == result.metrics["test/acc"]  # the same weights and split
    onnx = sorted((tmp_path / "outputs" / "export").glob("*/*/model.onnx"))
    assert len(onnx) == 1 and str(onnx[0].relative_to(tmp_path)) in capsys.readouterr().out


def test_importing_the_package_imports_nothing_heavy() -> None:
    code = "import sys, alexnet_lightning; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    heavy = [m for m in done.stdout.split() if m.startswith(("torch", "lightning", "hydra", "alexnet_lightning."))]
    assert not heavy


def test_train_and_export_are_the_functions_also_after_their_modules_are_imported() -> None:
    import alexnet_lightning.export
    import alexnet_lightning.train  # noqa: F401
    from alexnet_lightning import export, train
    from alexnet_lightning.train import main

    assert (train, export) == (api.train, api.export) and callable(main)


def test_predict_matches_the_predict_command_on_files_and_pil_images(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint
    images = tmp_path / "images"
    write_digit_images(images, per_class=1)
    (images / "3" / "broken.png").write_bytes(b"not a png")
    predict_command(compose_config("predict", tmp_path / "run", f"ckpt_path={ckpt}", f"inputs={images}", "top_k=3"))
    with (tmp_path / "run" / "predictions.csv").open() as f:
        expected = list(csv.DictReader(f))

    classifier = api.load(ckpt, device="cpu")
    table = classifier.predict(images, top_k=3)
    assert list(table.columns) == list(expected[0]) and len(table) == 11
    for row, want in zip(table.to_dict("records"), expected, strict=True):
        assert (row["path"], row["error"]) == (want["path"], want["error"])
        if want["error"]:
            assert pd.isna(row["predicted"]) and pd.isna(row["probability"]) and pd.isna(row["correct"])
            continue
        assert (row["predicted"], row["true"], str(row["correct"]).lower()) == (
            want["predicted"],
            want["true"],
            want["correct"],
        )
        assert row["probability"] == pytest.approx(float(want["probability"]), abs=1e-6)
        assert [c for c, _ in row["top_k"]] == [kv.split(":")[0] for kv in want["top_k"].split()]

    good = [Path(r["path"]) for r in expected if not r["error"]]
    pil = [Image.open(p) for p in good[:2]]
    mixed = classifier.predict([pil[0], good[1]])  # a PIL image and a file: the same answers as the files
    assert pd.isna(mixed.path[0]) and pd.isna(mixed.true[0])  # no file name: no true class
    assert (mixed.path[1], mixed.true[1]) == (str(good[1]), good[1].parent.name)
    assert mixed.probability.tolist() == pytest.approx(
        table.set_index("path").probability[[str(p) for p in good[:2]]].tolist()
    )
    assert classifier.predict(pil[0]).predicted[0] == mixed.predicted[0]
    assert pil[0].getpixel((0, 0)) is not None  # the caller's image is not closed
    assert classifier.classes == [str(d) for d in range(10)]
    x = classifier.predictor.preprocess(good[0])[None]
    assert classifier.model(x).shape == (1, 10) and not classifier.model.training


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: api.train("trainer.max_epochs=1"), r"overrides='trainer.max_epochs=1' is one string: pass a list"),
        (lambda: api.train(["dataset=nope"]), r"Could not find 'dataset/nope'"),
        (lambda: api.train(["trainer.max_epochs"]), r"Error parsing override 'trainer.max_epochs'"),
        (lambda: api.train(["trainer=ddp_sim"]), r"trainer.strategy=ddp starts its processes by rerunning"),
        (lambda: api.train(["data.batch_size=0"]), r"data.batch_size=0 is invalid"),
        (lambda: api.load("missing.ckpt"), r"missing.ckpt"),
        (lambda: api.evaluate("missing.ckpt", ["split=train"]), r"split=train is unknown"),
        (lambda: api.export("missing.ckpt", format="torchscript"), r"format=torchscript was removed"),
    ],
)
def test_bad_input_is_one_user_error(call, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=says) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_predict_refuses_what_is_not_an_image(tiny_checkpoint, tmp_path: Path) -> None:
    classifier = api.load(tiny_checkpoint[0], device="cpu")
    for inputs, says in [
        (42, "is not an image"),
        ([], "is not an image"),
        ([torch.zeros(3, 8, 8)], "inputs holds a Tensor"),
        (tmp_path / "nothing_here", "does not exist"),
    ]:
        with pytest.raises(UserError, match=says):
            classifier.predict(inputs)


def test_a_default_run_directory_is_never_an_earlier_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = Path(api._compose("eval", None, []).paths.output_dir)
    first.mkdir(parents=True)  # a run that started this second
    second = Path(api._compose("eval", None, []).paths.output_dir)
    assert second != first and second.parent.parent == first.parent.parent == tmp_path / "outputs" / "eval"
