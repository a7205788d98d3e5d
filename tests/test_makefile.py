"""Make targets that touch the user's files: clean-cache removes exactly the cache the config uses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
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
