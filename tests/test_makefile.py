"""Make targets: clean-cache removes exactly the cache the config uses; lint runs the hooks and mypy."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, compose_config

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("xdg", [True, False])
def test_clean_cache_removes_the_configs_cache_dir_and_says_so(tmp_path: Path, monkeypatch, xdg: bool) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    cache = Path(compose_config("config", tmp_path / "run").paths.cache_dir)
    (cache / "stats").mkdir(parents=True)
    (cache / "stats" / "x.json").write_text("{}")
    (cache.parent / "other_tool").mkdir()

    result = _make("clean-cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"removed {cache} (") and not cache.exists()
    assert (cache.parent / "other_tool").is_dir()  # only the project's folder
    assert _make("clean-cache").stdout == f"no cache at {cache}: nothing to remove\n"


def test_make_train_writes_the_sample_digits_after_training() -> None:
    commands = _make("-n", "train").stdout.splitlines()
    trained = next(i for i, c in enumerate(commands) if "-m alexnet_lightning.train" in c)
    assert any("-m alexnet_lightning.samples" in c for c in commands[trained + 1 :])


def test_make_lint_runs_every_pre_commit_hook_and_mypy() -> None:
    commands = _make("-n", "lint").stdout.splitlines()
    assert any(c.endswith("pre-commit run --all-files") for c in commands), commands
    assert any(c.endswith("-m mypy") for c in commands), commands


def test_pre_commit_hooks_are_local_and_their_tools_are_in_the_venv() -> None:
    """pre-commit clones nothing (the hooks run the dev extra's tools), and every hook's tool is installed."""
    config = REPO / ".pre-commit-config.yaml"
    checked = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    repos = yaml.safe_load(config.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"]
    bin_dir = Path(sys.executable).parent
    for hook in repos[0]["hooks"]:
        tool = bin_dir / shlex.split(hook["entry"])[0]
        assert hook["language"] == "system" and os.access(tool, os.X_OK), f"{hook['id']}: no {tool}"
