"""The console scripts of pyproject.toml are the same commands as ``python -m alexnet_lightning.<module>``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_command_module_has_a_script_and_every_script_a_main() -> None:
    commands = {"train", "eval", "predict", "export", "serve", "prepare", "inspect_data", "samples"}
    assert {target.split(":")[0].removeprefix("alexnet_lightning.") for target in SCRIPTS.values()} >= commands
    installed = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name in SCRIPTS}
    assert set(installed) == set(SCRIPTS), "reinstall the package (make install) after changing [project.scripts]"
    for name, ep in installed.items():
        assert callable(ep.load()), name


@pytest.mark.parametrize("script", ["alexnet-train", "alexnet-predict"])
def test_a_script_finds_its_config_from_any_folder(script: str, tmp_path: Path) -> None:
    path = shutil.which(script) or str(Path(sys.executable).parent / script)
    args = ["data.batch_size=-1"] if script == "alexnet-train" else ["ckpt_path=missing.ckpt", "inputs=x"]
    result = subprocess.run([path, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")  # its own one-line error: config composed
