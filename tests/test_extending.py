"""README's "How to extend" is true: each worked example, applied to a copy of the repository as written, runs.

The README's diff blocks are applied with ``git apply`` to a copy of ``alexnet_lightning/`` and
``conf/``, its Python blocks are saved under the file name their first line gives, and its commands
run there as subprocesses, shortened by appended overrides.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.errors import UserError

SHORT = ("++trainer.limit_train_batches=10", "++trainer.limit_val_batches=2", "test=false")


def examples() -> dict[str, list[tuple[str, str]]]:
    """``title -> [(language, code), ...]`` for each ``###`` example of README.md's "How to extend"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## How to extend") :]
    section = section[: section.index("\n## ", 3)]
    found = {}
    for part in section.split("\n### ")[1:]:
        title = part.splitlines()[0].strip()
        found[title] = re.findall(r"```(\w+)\n(.*?)```", part, flags=re.S)
    return found


def copy_repository(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "alexnet_lightning", root / "alexnet_lightning", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(REPO / "conf", root / "conf")
    return root


def apply(example: list[tuple[str, str]], root: Path) -> list[list[str]]:
    """Apply the example's diffs, write its Python files, and return its commands (argument lists)."""
    commands = []
    for language, code in example:
        if language == "diff":
            subprocess.run(["git", "apply", "--unsafe-paths", f"--directory={root.name}", "-"],
                           input=code, text=True, cwd=root.parent, check=True)  # fmt: skip
        elif language == "python":
            name = re.match(r"# (\S+\.py)", code)[1]
            (root / name).write_text(code)
        elif language == "yaml":
            name = re.match(r"# (\S+\.yaml)", code)[1]
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(code)
        elif language == "bash":
            for line in code.splitlines():
                words = shlex.split(line, comments=True)
                assert words[:2] == ["python", "-m"], f"not a command of this template: {line}"
                commands.append(words)
    return commands


def start(words: list[str], root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, *words[1:], *extra], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


@pytest.mark.slow
def test_the_extension_examples_run_as_written(tmp_path: Path) -> None:
    found = examples()
    assert set(found) == {"A new network option", "A new callback"}

    network = copy_repository(tmp_path / "network")
    (command,) = apply(found["A new network option"], network)
    callback = copy_repository(tmp_path / "callback")
    (callback_command,) = apply(found["A new callback"], callback)
    runs = {
        "network": start(command, network, "trainer.max_epochs=1", *SHORT, f"hydra.run.dir={tmp_path / 'run_network'}"),
        "callback": start(
            callback_command,
            callback,
            "trainer.max_epochs=20",
            "callbacks.stop_at.target=0.3",
            *SHORT,
            f"hydra.run.dir={tmp_path / 'run_callback'}",
        ),
    }
    output = {name: proc.communicate(timeout=600)[0] for name, proc in runs.items()}
    for name, proc in runs.items():
        assert proc.returncode == 0, f"{name} example failed:\n{output[name][-3000:]}"

    # the option reached the network and the checkpoint; the unpatched package refuses the unknown value
    check = "from alexnet_lightning.checkpoint import load_classifier as l; import sys; print(l(sys.argv[1]).net)"
    ckpt = tmp_path / "run_network" / "checkpoints" / "last.ckpt"
    shown = subprocess.run([sys.executable, "-c", check, str(ckpt)], cwd=network, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(network)}, check=True).stdout  # fmt: skip
    assert "GELU" in shown and "ReLU" not in shown
    with pytest.raises(UserError, match=r"model.activation='gelu' is unknown"):
        load_classifier(ckpt)

    # the callback stopped the run long before its 20 epochs
    assert re.search(r"val/acc \d\.\d{4} >= 0.3 after epoch \d+: stopping", output["callback"])
    epochs = [int(e) for e in re.findall(r"after epoch (\d+): stopping", output["callback"])]
    assert epochs and epochs[0] < 19
