"""conf/local/default.yaml: this machine's settings, read by every training run, never committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from alexnet_lightning import config, console

LOCAL = """# @package _global_
paths:
  cache_dir: /scratch/alexnet_cache
trainer:
  max_epochs: 7
"""


def test_local_default_yaml_is_read_after_the_groups_and_before_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # a copy of conf/: the real conf/local (and a developer's own default.yaml there) stays untouched,
    # and tests composing configs beside this one never see the file
    conf = tmp_path / "conf"
    shutil.copytree(config.CONF_DIR, conf, ignore=shutil.ignore_patterns("local"))
    monkeypatch.setattr(config, "CONF_DIR", conf)
    monkeypatch.setattr(console, "CONF_DIR", conf)
    without = config.compose_config("config", tmp_path, ["experiment=digits_fast"])
    console.print_config_tree(without)
    assert "local=" not in capsys.readouterr().out

    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text(LOCAL)
    cfg = config.compose_config("config", tmp_path, ["experiment=digits_fast"])  # the recipe sets max_epochs: 3
    assert (cfg.paths.cache_dir, cfg.trainer.max_epochs) == ("/scratch/alexnet_cache", 7)
    assert cfg.data.cache_dir == "/scratch/alexnet_cache"  # and what interpolates it
    console.print_config_tree(cfg)
    assert " local=default\n" in capsys.readouterr().out
    assert config.compose_config("config", tmp_path, ["trainer.max_epochs=2"]).trainer.max_epochs == 2


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_git_ignores_conf_local_but_its_readme() -> None:
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0

    assert ignored("conf/local/default.yaml") and ignored("conf/local/my_cluster.yaml")
    assert not ignored("conf/local/README.md") and (REPO / "conf/local/README.md").is_file()
