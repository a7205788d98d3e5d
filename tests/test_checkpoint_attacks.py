"""Crafted checkpoints: nothing a checkpoint says can run or write, through any command that reads one.

Each case takes the hyperparameters of a real (tiny) checkpoint, changes one thing the way an
attacker or a broken tool would, and saves the result with ``torch.save`` of plain containers, so
``torch.load(weights_only=True)`` reads it without complaint: the hyperparameter check alone has to
refuse it. Payloads write a marker file when Hydra's ``instantiate`` follows them (checked below),
so "the marker does not exist" proves that nothing in the file was instantiated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from conftest import compose_config, run_cli
from omegaconf import DictConfig, open_dict

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.errors import UserError
from alexnet_lightning.eval import evaluate
from alexnet_lightning.export import export
from alexnet_lightning.module import AlexNetClassifier
from alexnet_lightning.predict import predict
from alexnet_lightning.serve import build_app

Hparams = dict[str, Any]


def savetxt(marker: Path) -> dict[str, Any]:
    return {"_target_": "numpy.savetxt", "fname": str(marker), "X": ["any text"], "fmt": "%s"}


def payloads(marker: Path, source: Path) -> dict[str, dict[str, Any]]:
    """Each writes ``marker`` when instantiated (``source``: any existing file, for copyfile)."""
    return {
        "savetxt": savetxt(marker),
        "open": {"_target_": "builtins.open", "file": str(marker), "mode": "w"},
        "write_text": {
            "_target_": "pathlib.Path.write_text",
            "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "pwned"],
        },
        "torch_save": {"_target_": "torch.save", "obj": [1, 2], "f": str(marker)},
        "copyfile": {"_target_": "shutil.copyfile", "src": str(source), "dst": str(marker)},
    }


@pytest.mark.parametrize("payload", ["savetxt", "open", "write_text", "torch_save", "copyfile"])
def test_every_payload_really_writes_its_marker_when_instantiated(tmp_path: Path, payload: str) -> None:
    marker, source = tmp_path / "pwned", tmp_path / "source"
    source.write_text("x")
    hydra.utils.instantiate({"model": {"evil": payloads(marker, source)[payload]}})  # what the old loader did
    assert marker.exists()


def _set(section: str, key: str, value: Any) -> Callable[[Hparams, Path, Path], None]:
    def mutate(hp: Hparams, marker: Path, source: Path) -> None:
        target = hp if section == "" else hp[section]
        target[key] = value(marker, source) if callable(value) else value

    return mutate


def _payload(name: str) -> Callable[[Path, Path], dict[str, Any]]:
    return lambda marker, source: payloads(marker, source)[name]


def _replace(section: str, value: Callable[[Path, Path], Any] | Any) -> Callable[[Hparams, Path, Path], None]:
    def mutate(hp: Hparams, marker: Path, source: Path) -> None:
        hp[section] = value(marker, source) if callable(value) else value

    return mutate


def _drop(section: str, key: str) -> Callable[[Hparams, Path, Path], None]:
    def mutate(hp: Hparams, marker: Path, source: Path) -> None:
        del (hp if section == "" else hp[section])[key]

    return mutate


# id -> (change to the hyperparameters, in place or returning their replacement; what the error must name)
CASES: dict[str, tuple[Callable[[Hparams, Path, Path], Any], str]] = {
    # a nested _target_ in each section, under an unknown key and under a known one
    **{
        f"{section}.evil={name}": (_set(section, "evil", _payload(name)), f"hyper_parameters.{section}.evil")
        for section in ("model", "optimizer", "scheduler")
        for name in ("savetxt", "open", "write_text", "torch_save", "copyfile")
    },
    "model.head=savetxt": (_set("model", "head", _payload("savetxt")), "hyper_parameters.model.head"),
    "optimizer.lr=savetxt": (_set("optimizer", "lr", _payload("savetxt")), "hyper_parameters.optimizer.lr"),
    "scheduler.eta_min=open": (_set("scheduler", "eta_min", _payload("open")), "hyper_parameters.scheduler.eta_min"),
    "evil=savetxt": (_set("", "evil", _payload("savetxt")), "hyper_parameters.evil"),
    # the top-level targets swapped
    "model._target_=savetxt": (
        _replace("model", lambda marker, source: {**savetxt(marker), "head": "gap"}),
        "hyper_parameters.model._target_",
    ),
    "optimizer._target_=os.system": (
        _replace("optimizer", lambda marker, source: {"_target_": "os.system", "command": f"touch {marker}"}),
        "hyper_parameters.optimizer._target_",
    ),
    "scheduler._target_=builtins.exec": (
        _replace("scheduler", lambda m, s: {"_target_": "builtins.exec", "_args_": [f"open({str(m)!r}, 'w')"]}),
        "hyper_parameters.scheduler._args_",
    ),
    "optimizer._target_=torch.optim.Optimizer": (
        _replace("optimizer", {"_target_": "torch.optim.Optimizer", "defaults": {}}),
        "hyper_parameters.optimizer",
    ),
    "optimizer.name=os.system": (_set("optimizer", "name", "os.system"), "hyper_parameters.optimizer.name"),
    "scheduler.name=LambdaLR": (
        _replace("scheduler", {"name": "LambdaLR", "lr_lambda": "lambda epoch: open('x', 'w')"}),
        "hyper_parameters.scheduler.lr_lambda",
    ),
    "_instantiator=os.system": (_set("", "_instantiator", "os.system"), "hyper_parameters._instantiator"),
    # Hydra's other instantiate keys
    "model._args_": (_set("model", "_args_", ["x"]), "hyper_parameters.model._args_"),
    "model._convert_": (_set("model", "_convert_", "all"), "hyper_parameters.model._convert_"),
    "optimizer._partial_": (_set("optimizer", "_partial_", True), "hyper_parameters.optimizer._partial_"),
    "scheduler._recursive_": (_set("scheduler", "_recursive_", False), "hyper_parameters.scheduler._recursive_"),
    # OmegaConf interpolations
    "optimizer.lr=${oc.env:HOME}": (_set("optimizer", "lr", "${oc.env:HOME}"), "hyper_parameters.optimizer.lr"),
    "model.layout=${eval:...}": (
        _set("model", "layout", lambda m, s: f"${{eval:__import__('os').system('touch {m}')}}"),
        "hyper_parameters.model.layout",
    ),
    "class_names[0]=${oc.env:HOME}": (
        _set("", "class_names", ["${oc.env:HOME}", *map(str, range(1, 10))]),
        "hyper_parameters.class_names[0]",
    ),
    # wrong types
    "image_size=abc": (_set("", "image_size", "abc"), "hyper_parameters.image_size"),
    "image_size=True": (_set("", "image_size", True), "hyper_parameters.image_size"),
    "class_names=dict": (_set("", "class_names", {str(i): i for i in range(10)}), "hyper_parameters.class_names"),
    "class_names=ints": (_set("", "class_names", list(range(10))), "hyper_parameters.class_names[0]"),
    "model.dropout=x": (_set("model", "dropout", "x"), "hyper_parameters.model.dropout"),
    "model.dropout=1.5": (_set("model", "dropout", 1.5), "hyper_parameters.model.dropout"),
    "model.pretrained=1": (_set("model", "pretrained", 1), "hyper_parameters.model.pretrained"),
    "model.head=wide": (_set("model", "head", "wide"), "hyper_parameters.model.head"),
    "in_channels=1000": (_set("", "in_channels", 1000), "hyper_parameters.in_channels"),
    "mean=3 values": (_set("", "mean", [0.5, 0.5, 0.5]), "hyper_parameters.mean"),
    "std=text": (_set("", "std", "0.5"), "hyper_parameters.std"),
    "std=0": (_set("", "std", [0.0]), "hyper_parameters.std"),
    "label_smoothing=True": (_set("", "label_smoothing", True), "hyper_parameters.label_smoothing"),
    "crop_fraction=1.5": (_set("", "crop_fraction", 1.5), "hyper_parameters.crop_fraction=1.5 must be in (0, 1]"),
    "optimizer.fused=yes": (_set("optimizer", "fused", "yes"), "hyper_parameters.optimizer.fused"),
    "optimizer.lr=nan": (_set("optimizer", "lr", float("nan")), "hyper_parameters.optimizer.lr"),
    "scheduler.interval=hour": (_set("scheduler", "interval", "hour"), "hyper_parameters.scheduler.interval"),
    # absurd sizes
    "image_size=1e9": (_set("", "image_size", 10**9), "hyper_parameters.image_size"),
    "class_names=100000": (_set("", "class_names", [str(i) for i in range(100_000)]), "hyper_parameters.class_names"),
    "model.hidden=1e6": (_set("model", "hidden", 10**6), "hyper_parameters.model.hidden"),
    "scheduler.T_max=1e12": (_set("scheduler", "T_max", 10**12), "hyper_parameters.scheduler.T_max"),
    "optimizer.betas=long": (_set("optimizer", "betas", [0.9] * 10**5), "hyper_parameters.optimizer.betas"),
    "model.pretrained_path=huge": (
        _set("model", "pretrained_path", "x" * 10**6),
        "hyper_parameters.model.pretrained_path",
    ),
    # the data record: names a source and a folder to read, nothing to run or write
    "data.evil=savetxt": (_set("data", "evil", _payload("savetxt")), "hyper_parameters.data.evil"),
    "data._target_=savetxt": (
        _replace("data", lambda marker, source: {**savetxt(marker), "source": "digits"}),
        "hyper_parameters.data._target_",
    ),
    "data.options.x=savetxt": (
        lambda hp, marker, source: hp["data"]["options"].update(x=savetxt(marker)),
        "hyper_parameters.data.options.x",
    ),
    "data.options._target_": (
        lambda hp, marker, source: hp["data"]["options"].update(_target_="os.system"),
        "hyper_parameters.data.options._target_",
    ),
    "data.source=os.system": (_set("data", "source", "os.system"), "hyper_parameters.data.source"),
    "data.data_dir=${oc.env:HOME}": (_set("data", "data_dir", "${oc.env:HOME}"), "hyper_parameters.data.data_dir"),
    "data.seed=text": (_set("data", "seed", "0"), "hyper_parameters.data.seed"),
    "data.val_fraction=2": (_set("data", "val_fraction", 2.0), "hyper_parameters.data.val_fraction"),
    # extra and missing keys
    "extra top-level key": (_set("", "notes", "hello"), "hyper_parameters.notes"),
    "missing std": (_drop("", "std"), "hyper_parameters.std is missing"),
    "missing model": (_drop("", "model"), "hyper_parameters.model is missing"),
    "missing optimizer.name": (_drop("optimizer", "name"), "hyper_parameters.optimizer.name is missing"),
    "model.in_channels (plain form)": (_set("model", "in_channels", 1), "hyper_parameters.model.in_channels"),
    "StepLR without step_size": (_replace("scheduler", {"name": "StepLR"}), "hyper_parameters.scheduler.step_size"),
    "hyper_parameters=list": (lambda hp, marker, source: [dict(hp)], "hyper_parameters is a list"),
}


@pytest.fixture(scope="module")
def raw(tiny_checkpoint) -> dict[str, Any]:
    checkpoint = torch.load(tiny_checkpoint[0], weights_only=True)
    assert checkpoint["hyper_parameters"]["scheduler"], "the cases below change the scheduler section too"
    return checkpoint


@pytest.fixture(scope="module")
def command_configs(tmp_path_factory) -> dict[str, DictConfig]:
    """Each command's config, composed once; a case sets ckpt_path and the run directory."""
    out = tmp_path_factory.mktemp("commands")
    return {name: compose_config(name, out / name) for name in ("eval", "predict", "export", "serve")}


def craft(raw: dict[str, Any], mutate: Callable[[Hparams, Path, Path], Any], folder: Path) -> tuple[Path, Path]:
    """The checkpoint with its hyperparameters changed, saved as plain containers; and the case's marker path."""
    checkpoint = copy.deepcopy(raw)
    marker, source = folder / "pwned", folder / "source.txt"
    source.write_text("any file")
    replaced = mutate(checkpoint["hyper_parameters"], marker, source)
    if replaced is not None:
        checkpoint["hyper_parameters"] = replaced
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path, marker


def _configured(cfg: DictConfig, ckpt: Path, out: Path) -> DictConfig:
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.ckpt_path = str(ckpt)
        cfg.paths.output_dir = str(out)
        if "inputs" in cfg:
            cfg.inputs = str(out)
    return cfg


COMMANDS: dict[str, Callable[[DictConfig], Any]] = {
    "eval": evaluate,
    "predict": predict,
    "export": export,
    "serve": build_app,
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_checkpoint_is_refused_everywhere_and_writes_nothing(
    case: str, raw, command_configs, tmp_path: Path
) -> None:
    mutate, names = CASES[case]
    path, marker = craft(raw, mutate, tmp_path)

    with pytest.raises(UserError) as info:
        load_classifier(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"checkpoint {path}: "), message
    assert names in message and message.endswith("refused"), message
    for name, command in COMMANDS.items():
        with pytest.raises(UserError) as info:
            command(_configured(command_configs[name], path, tmp_path / name))
        assert str(info.value) == message, name
    # Lightning's own loader builds the module through the same checks (it drops unknown top-level keys)
    try:
        AlexNetClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        refused = False
    except Exception:
        refused = True
    if names.startswith(tuple(f"hyper_parameters.{s}" for s in ("model", "optimizer", "scheduler", "class_names"))):
        assert refused
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "case"),
    [("alexnet_lightning.eval", "model.evil=savetxt"), ("alexnet_lightning.serve", "optimizer._target_=os.system")],
)
def test_cli_refuses_a_crafted_checkpoint_in_one_line(module: str, case: str, raw, tmp_path: Path) -> None:
    path, marker = craft(raw, CASES[case][0], tmp_path)
    result = run_cli(module, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: checkpoint {path}: {CASES[case][1]}"), lines
    assert lines[0].endswith("refused")
    assert not marker.exists()


def _walk(value: Any, key: str = "hyper_parameters") -> list[str]:
    """Every key path under ``value``."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in (f"{key}.{k}", *_walk(v, f"{key}.{k}"))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _walk(v, f"{key}[{i}]")]
    return []


def test_a_new_checkpoint_stores_plain_hyperparameters_only(raw) -> None:
    hp = raw["hyper_parameters"]
    assert not [p for p in _walk(hp) if p.rsplit(".", 1)[-1].startswith("_")]
    assert "_target_" not in repr(hp) and "${" not in repr(hp)
    assert hp["optimizer"]["name"] == "AdamW" and hp["scheduler"]["name"] == "CosineAnnealingLR"
    assert hp["model"]["head"] == "gap" and "in_channels" not in hp["model"]


def as_written_before(hp: Hparams) -> Hparams:
    """The hyperparameters as checkpoints stored them before the plain form: the training config's ``_target_``,
    and no ``crop_fraction`` (the eval view's crop, 1.0 for them)."""
    old = copy.deepcopy(hp)
    assert old.pop("crop_fraction") == 1.0
    old["model"] = {
        "_target_": "alexnet_lightning.models.alexnet.build_alexnet",
        "in_channels": hp["in_channels"],
        **hp["model"],
    }
    optimizer = dict(old["optimizer"])
    old["optimizer"] = {"_target_": f"torch.optim.{optimizer.pop('name')}", **optimizer}
    scheduler = dict(old["scheduler"])
    old["scheduler"] = {"_target_": f"torch.optim.lr_scheduler.{scheduler.pop('name')}", **scheduler}
    return old


def test_a_checkpoint_written_before_the_plain_form_loads_and_predicts_the_same(raw, tmp_path: Path) -> None:
    new_path = tmp_path / "new.ckpt"
    torch.save(raw, new_path)
    old_path, marker = craft(raw, lambda hp, marker, source: as_written_before(hp), tmp_path)
    assert torch.load(old_path, weights_only=True)["hyper_parameters"]["optimizer"]["_target_"] == "torch.optim.AdamW"

    new, old = load_classifier(new_path), load_classifier(old_path)
    assert dict(old.hparams) == dict(new.hparams) == raw["hyper_parameters"]
    x = torch.randn(4, 1, 72, 72, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(old(x), new(x))
    # the old layout with anything more than the known builder or a torch class is still refused
    evil = as_written_before(raw["hyper_parameters"])
    evil["model"]["evil"] = savetxt(marker)
    path, _ = craft(raw, lambda hp, m, s: evil, tmp_path)
    with pytest.raises(UserError, match=r"hyper_parameters\.model\.evil is not an option of the network: refused"):
        load_classifier(path)
    assert not marker.exists()
