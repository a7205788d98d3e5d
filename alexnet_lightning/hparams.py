"""Hyperparameters are data, never code: the one allow-list between a checkpoint and the objects it describes.

A checkpoint is untrusted input (it may have been downloaded). ``torch.load(weights_only=True)``
stops pickled code, but handing its hyperparameters to Hydra's ``instantiate`` would still run
whatever ``_target_`` they name, nested ones first: one extra key could write a file. So nothing
read from a file is instantiated. The only objects built from hyperparameters are:

- the network: always ``build_alexnet``, called with its own keyword options;
- the optimizer: ``name`` resolved among the ``torch.optim`` optimizer classes;
- the scheduler: ``name`` resolved among the ``torch.optim.lr_scheduler`` scheduler classes.

Every value must be plain (None, bool, int, float, str, or a short list of those), with no
``${...}`` interpolation, and fit the builder's or class's signature (type hints, known keys,
required keys, sane sizes). Training's composed config (a user writes it with ``_target_``) goes
through the same functions as checkpoints written before the plain form did: ``_target_`` exactly
the builder, ``torch.optim.<Class>`` or ``torch.optim.lr_scheduler.<Class>``, nothing nested. Both
become the plain form, which is what checkpoints store and what the module builds from.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from alexnet_lightning.errors import UserError
from alexnet_lightning.models.alexnet import AlexNet, build_alexnet

BUILDER = "alexnet_lightning.models.alexnet.build_alexnet"
RUNTIME_OPTIONS = ("compile", "channels_last")  # how to run the network, not what it is
SCHEDULER_OPTIONS = {"interval": Literal["epoch", "step"]}  # read by configure_optimizers, not by torch
FILLED_AT_FIT = ("T_max", "total_steps")  # null: the run's max_epochs / estimated steps

TOP_LEVEL = ("model", "optimizer", "scheduler", "class_names", "image_size", "in_channels", "mean", "std",
             "label_smoothing")  # fmt: skip
OPTIONAL = ("data", "crop_fraction")  # where the images were, the eval view's crop (older checkpoints lack them)
DATA_KEYS = {"source": str, "data_dir": str | None, "options": dict, "val_fraction": float, "test_fraction": float,
             "seed": int}  # fmt: skip
MAX_CLASSES = 25_000
IMAGE_SIZES = (8, 1024)
CHANNELS = (1, 3)
MAX_INT = 2**31 - 1
MAX_TEXT = 4096
MAX_LIST = 64  # lists inside model/optimizer/scheduler options (betas, milestones, ...)


class HParamError(UserError):
    """A hyperparameter that is not plain, not known or out of range; the message starts with its key."""


def _text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _choices(options: Sequence[Any]) -> str:
    names = [str(o) for o in options]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return f"one of {_choices(args)}"
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0]) if args else 'plain values'}"
    if hint is type(None):
        return "null"
    if hint is _Unresolved:
        return "an object (not plain data)"
    return getattr(hint, "__name__", str(hint))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a plain value fits a type hint; hints that need objects (tensors, callables) never do."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return not isinstance(value, (list, tuple))
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, Iterable) and isinstance(value, (list, tuple)):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return all(_fits(v, args[0] if args else Any) for v in value)
    return False


def _check_plain(key: str, value: Any, max_list: int = MAX_LIST) -> None:
    """None, bool, int, float, str, or a short flat list of those; finite numbers, short text, no ``${``."""
    if isinstance(value, Mapping):
        raise HParamError(f"{key} is a nested mapping, not a plain value")
    if isinstance(value, (list, tuple)):
        if len(value) > max_list:
            raise HParamError(f"{key} is a list of {len(value)} values (at most {max_list})")
        for i, item in enumerate(value):
            if isinstance(item, (Mapping, list, tuple)):
                raise HParamError(f"{key}[{i}] is a nested container, not a plain value")
            _check_plain(f"{key}[{i}]", item)
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise HParamError(f"{key}={value} is out of range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise HParamError(f"{key}={value} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise HParamError(f"{key} is a text of {len(value)} characters (at most {MAX_TEXT})")
        if "${" in value:
            raise HParamError(f"{key}={_text(value)} is an interpolation, not a plain value")
        return
    raise HParamError(f"{key} is a {type(value).__name__}, not a plain value")


def _check_value(key: str, value: Any, hint: Any) -> None:
    _check_plain(key, value)
    if _fits(value, hint):
        return
    if typing.get_origin(hint) is Literal and isinstance(value, str):
        raise HParamError(f"{key}={value!r} is unknown: use {_choices(typing.get_args(hint))}")
    raise HParamError(f"{key}={_text(value)} must be {_describe(hint)}")


def _options(section: str, cfg: Any) -> dict[str, Any]:
    """A mapping with text keys and none of Hydra's instantiate keys except a top-level ``_target_``."""
    if not isinstance(cfg, Mapping):
        raise HParamError(f"{section} is a {type(cfg).__name__}, not a mapping of options")
    for key in cfg:
        if not isinstance(key, str):
            raise HParamError(f"{section} has a key {_text(key)} that is not text")
        if key.startswith("_") and key != "_target_":
            raise HParamError(f"{section}.{key} is a Hydra instantiate key, not an option")
    return dict(cfg)


def _check_signature(section: str, cfg: dict[str, Any], hints: dict[str, Any], required: Iterable[str]) -> None:
    for key, value in cfg.items():
        if key not in hints:
            raise HParamError(f"{section}.{key} is not an option of the {_NOUN[section]}")
        _check_value(f"{section}.{key}", value, hints[key])
    for key in required:
        if key not in cfg:
            raise HParamError(f"{section}.{key} is missing")


_NOUN = {"model": "network", "optimizer": "optimizer", "scheduler": "scheduler"}


class _Unresolved:
    """The hint of a parameter whose annotation does not resolve: no plain value fits it."""


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``typing.get_type_hints``, one parameter at a time when some annotation does not resolve."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        probe = types.FunctionType((lambda: None).__code__, getattr(fn, "__globals__", {}))
        probe.__annotations__ = {name: annotation}
        try:
            hints.update(typing.get_type_hints(probe))
        except Exception:
            hints[name] = _Unresolved
    return hints


def _signature_hints(fn: Callable[..., Any], skip: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Keyword options of ``fn`` (minus ``skip``) with their type hints, and the required ones."""
    resolved = _type_hints(fn)
    hints, required = {}, []
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hints[name] = resolved.get(name, inspect.Parameter.empty)
        if p.default is p.empty:
            required.append(name)
    return hints, required


# the network's options: build_alexnet's keyword arguments (num_classes and in_channels are top-level) + runtime
_MODEL_HINTS = {**_signature_hints(build_alexnet, ("num_classes", "in_channels"))[0], "compile": bool,
                "channels_last": bool}  # fmt: skip


def plain_model(cfg: Any) -> dict[str, Any]:
    """The network's options, checked; a config or old checkpoint with ``_target_`` = the builder is converted."""
    cfg = _options("model", cfg)
    if "_target_" in cfg:
        if (target := cfg.pop("_target_")) != BUILDER:
            raise HParamError(f"model._target_={_text(target)} is not {BUILDER}: no other builder is allowed")
        if "in_channels" in cfg:  # the old form repeated it; the top-level in_channels is the one used
            _check_value("model.in_channels", cfg.pop("in_channels"), Literal[CHANNELS])
    _check_signature("model", cfg, _MODEL_HINTS, ())
    if "dropout" in cfg and not 0.0 <= cfg["dropout"] < 1.0:
        raise HParamError(f"model.dropout={cfg['dropout']} must be in [0, 1)")
    return cfg


def _torch_class(module: types.ModuleType, name: Any, base: type) -> type | None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        return None
    cls = vars(module).get(name)
    ok = (
        isinstance(cls, type) and issubclass(cls, base) and cls is not base and cls.__module__.startswith("torch.optim")
    )
    return cls if ok else None


def optimizer_class(name: Any) -> type[torch.optim.Optimizer]:
    cls = _torch_class(torch.optim, name, torch.optim.Optimizer)
    if cls is None:
        raise HParamError(f"optimizer.name={_text(name)} is not an optimizer class of torch.optim")
    return cls


def scheduler_class(name: Any) -> type[LRScheduler | ReduceLROnPlateau]:
    module = torch.optim.lr_scheduler
    cls = _torch_class(module, name, module.LRScheduler) or _torch_class(module, name, module.ReduceLROnPlateau)
    if cls is None:
        raise HParamError(f"scheduler.name={_text(name)} is not a scheduler class of torch.optim.lr_scheduler")
    return cls


def _named(section: str, cfg: Any, package: str) -> dict[str, Any]:
    """``{name: X, ...}``; ``{_target_: <package>.X, ...}`` (a training config, an old checkpoint) is converted."""
    cfg = _options(section, cfg)
    if "_target_" in cfg:
        target = cfg.pop("_target_")
        match = re.fullmatch(rf"{re.escape(package)}\.([A-Za-z0-9]+)", target) if isinstance(target, str) else None
        if match is None or "name" in cfg:
            raise HParamError(f"{section}._target_={_text(target)} is not a class of {package}")
        cfg = {"name": match[1], **cfg}
    if "name" not in cfg:
        raise HParamError(f"{section}.name is missing")
    return cfg


def plain_optimizer(cfg: Any) -> dict[str, Any]:
    """``{name: AdamW, lr: ..., ...}``: a torch.optim class and keyword arguments that fit its signature."""
    cfg = _named("optimizer", cfg, "torch.optim")
    hints, required = _signature_hints(optimizer_class(cfg["name"]).__init__, ("params",))
    _check_signature("optimizer", {k: v for k, v in cfg.items() if k != "name"}, hints, required)
    return cfg


def plain_scheduler(cfg: Any) -> dict[str, Any] | None:
    """None (constant lr) or ``{name: StepLR, ..., interval: epoch|step}`` checked like the optimizer."""
    if cfg is None or (isinstance(cfg, Mapping) and not cfg):
        return None
    cfg = _named("scheduler", cfg, "torch.optim.lr_scheduler")
    hints, required = _signature_hints(scheduler_class(cfg["name"]).__init__, ("optimizer",))
    hints = {**hints, **SCHEDULER_OPTIONS}
    for key in FILLED_AT_FIT:
        if key in hints:
            hints[key] = hints[key] | None
    _check_signature("scheduler", {k: v for k, v in cfg.items() if k != "name"}, hints, required)
    return cfg


def _check_top_level(hp: dict[str, Any]) -> None:
    names, channels = hp["class_names"], hp["in_channels"]
    _check_value("in_channels", channels, Literal[CHANNELS])
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES:
        raise HParamError(f"class_names must be a list of 1 to {MAX_CLASSES} names")
    for i, name in enumerate(names):
        if not isinstance(name, str) or len(name) > 1024:
            raise HParamError(f"class_names[{i}]={_text(name)} must be a text of at most 1024 characters")
        _check_plain(f"class_names[{i}]", name)
    size = hp["image_size"]
    _check_value("image_size", size, int)
    if not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
        raise HParamError(f"image_size={size} must be in [{IMAGE_SIZES[0]}, {IMAGE_SIZES[1]}]")
    for key in ("mean", "std"):
        values = hp[key]
        if not isinstance(values, list) or len(values) != channels:
            raise HParamError(f"{key} must be a list of {channels} numbers (one per channel)")
        for i, v in enumerate(values):
            _check_value(f"{key}[{i}]", v, float)
    if any(s <= 0 for s in hp["std"]):
        raise HParamError("std must be positive")
    _check_value("label_smoothing", hp["label_smoothing"], float)
    if not 0.0 <= hp["label_smoothing"] < 1.0:
        raise HParamError(f"label_smoothing={hp['label_smoothing']} must be in [0, 1)")
    _check_value("crop_fraction", hp["crop_fraction"], float)
    if not 0.0 < hp["crop_fraction"] <= 1.0:
        raise HParamError(f"crop_fraction={hp['crop_fraction']} must be in (0, 1]")


def plain_data(cfg: Any) -> dict[str, Any] | None:
    """Where the training images were, as plain values: read by eval, never turned into code or a file to write.

    ``source`` must be a name (a source of alexnet_lightning/data/sources.py, looked up there, never imported);
    ``options`` are the source's keyword options, each a plain value.
    """
    if cfg is None:
        return None
    cfg = _options("data", cfg)
    for key in cfg:
        if key not in DATA_KEYS:
            raise HParamError(f"data.{key} is not a key of the data record (use {_choices(list(DATA_KEYS))})")
    missing = [k for k in DATA_KEYS if k not in cfg]
    if missing:
        raise HParamError(f"data.{missing[0]} is missing")
    options = _options("data.options", cfg["options"])
    for key, value in options.items():
        if key == "_target_":
            raise HParamError("data.options._target_ is a Hydra instantiate key, not an option")
        _check_plain(f"data.options.{key}", value)
    for key, hint in DATA_KEYS.items():
        if key != "options":
            _check_value(f"data.{key}", cfg[key], hint)
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", cfg["source"]):
        raise HParamError(f"data.source={_text(cfg['source'])} is not the name of a data source")
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 <= cfg[key] < 1.0:
            raise HParamError(f"data.{key}={cfg[key]} must be in [0, 1)")
    return {**cfg, "options": options}


def plain_hparams(hp: Any) -> dict[str, Any]:
    """The classifier's hyperparameters, checked and in plain form; an HParamError names the first bad key."""
    if not isinstance(hp, Mapping):
        raise HParamError(f"hyper_parameters is a {type(hp).__name__}, not a mapping")
    for key in hp:
        if key not in TOP_LEVEL + OPTIONAL:
            raise HParamError(
                f"{_text(key) if not isinstance(key, str) else key} is not a hyperparameter of the classifier"
            )
    missing = [k for k in TOP_LEVEL if k not in hp]
    if missing:
        raise HParamError(f"{missing[0]} is missing")
    hp = {"crop_fraction": 1.0} | dict(hp)  # written before the eval crop was an option: the whole short side
    _check_top_level(hp)
    hp["model"] = plain_model(hp["model"])
    hp["optimizer"] = plain_optimizer(hp["optimizer"])
    hp["scheduler"] = plain_scheduler(hp["scheduler"])
    hp["data"] = plain_data(hp.get("data"))
    return hp


def build_network(model: Mapping[str, Any], num_classes: int, in_channels: int) -> AlexNet:
    options = {k: v for k, v in plain_model(model).items() if k not in RUNTIME_OPTIONS}
    return build_alexnet(num_classes=num_classes, in_channels=in_channels, **options)


def build_optimizer(cfg: Mapping[str, Any], params: Any) -> torch.optim.Optimizer:
    options = plain_optimizer(cfg)
    return optimizer_class(options.pop("name"))(params, **options)


def build_scheduler(cfg: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler of a plain config whose ``interval`` was taken out and null sizes filled in."""
    options = plain_scheduler(cfg)
    if options is None:
        raise HParamError("scheduler is empty")
    return scheduler_class(options.pop("name"))(optimizer, **options)
