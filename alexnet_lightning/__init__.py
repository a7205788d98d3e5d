"""AlexNet-family image classifiers with Lightning and Hydra: the commands, and their Python API.

    from alexnet_lightning import evaluate, export, load, train

The API (``alexnet_lightning/api.py``) is imported on first use, so ``import alexnet_lightning`` and
every ``python -m alexnet_lightning.<command>`` stay as quick as without it. ``train`` and ``export``
are also the names of command modules: here they are the functions, and importing those modules
(``from alexnet_lightning.train import main``, ``python -m alexnet_lightning.train``) does not change that.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alexnet_lightning.api import Classifier, TrainResult, evaluate, export, load, train

__all__ = ["Classifier", "TrainResult", "evaluate", "export", "load", "train"]


class _Package(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name not in __all__:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module("alexnet_lightning.api"), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in __all__ and isinstance(value, types.ModuleType):
            return  # Python binds a package's submodule as its attribute on import: the API keeps these names
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
