"""Printing for people: the composed config as a tree at the start of every run."""

from __future__ import annotations

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

FIRST = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger")


def print_config_tree(cfg: DictConfig) -> None:
    """Show the resolved config, main groups first, so a run's settings are visible in its log."""
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/bold]").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
