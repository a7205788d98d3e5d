"""Printing for people: the config at the start of every run, the checkpoints at its end."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import rich
import rich.syntax
import rich.tree
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from alexnet_lightning.config import CONF_DIR
from alexnet_lightning.errors import UserError

FIRST = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger")


def print_config_tree(cfg: DictConfig, mode: str | None = None) -> None:
    """Show the run's settings in its log: by default the config groups chosen and the overrides typed.

    ``mode`` (default: the config's ``print_config``): ``short``, ``full`` (the whole resolved config as
    a tree, main groups first) or ``none``.
    """
    mode = mode or cfg.get("print_config", "short")
    if mode not in ("short", "full", "none"):
        raise UserError(f"print_config={mode!r} is unknown: use short, full or none")
    if mode == "short":
        print_config_choices()
    elif mode == "full":
        print_full_config(cfg)


def print_config_choices() -> None:
    """Three lines: each config group's option (dataset=digits model=alexnet ...), then the overrides typed."""
    hydra_cfg = HydraConfig.get()
    choices = reversed(list(hydra_cfg.runtime.choices.items()))  # Hydra lists them last default first
    groups = [f"{group}={option}" for group, option in choices if _applied(group, option)]
    print("config: " + " ".join(groups))
    print("overrides: " + (" ".join(hydra_cfg.overrides.task) or "none"))
    print("print_config=full shows the whole config")


def _applied(group: str, option: str | None) -> bool:
    """An option that shaped the config: Hydra names ``optional local`` chosen also where the file is absent."""
    if not option or group.startswith("hydra"):
        return False
    return group != "local" or (CONF_DIR / "local" / f"{option}.yaml").is_file()


def print_full_config(cfg: DictConfig) -> None:
    """The resolved config as a tree, main groups first."""
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [str(k) for k in cfg if k not in FIRST]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/bold]").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def shown_path(path: str | Path) -> str:
    """``path`` relative to the current directory when it lies inside it (``outputs/...``), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def describe_checkpoints(trainer: L.Trainer) -> str:
    """One line: the best checkpoint (score, epoch) and the last one, the files to evaluate and to resume from."""
    parts = []
    for cb in trainer.checkpoint_callbacks:
        if not isinstance(cb, ModelCheckpoint):  # Lightning's Checkpoint base has no files to name
            continue
        if cb.monitor and Path(cb.best_model_path).is_file():
            epoch = torch.load(cb.best_model_path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
            score = f"{cb.monitor} {float(cb.best_model_score):.4f}, " if cb.best_model_score is not None else ""
            where = f"epoch {epoch + 1} of {trainer.current_epoch}"
            parts.append(f"best checkpoint: {shown_path(cb.best_model_path)} ({score}{where})")
        elif not cb.monitor and Path(last := cb.last_model_path or cb.best_model_path).is_file():
            parts.append(f"last: {shown_path(last)}")
    return "; ".join(parts)
