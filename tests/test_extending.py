"""README's "How to extend" is true: each worked example, applied to a copy of the repository as written, runs.

The README's diff blocks are applied with ``git apply`` to a copy of ``alexnet_lightning/`` and
``conf/``, its Python blocks are saved under the file name their first line gives, and its commands
run there as subprocesses, shortened by appended overrides.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from fixtures import make_catsdogs_folder

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


def apply(example: list[tuple[str, str]], root: Path, paths: dict[str, str] | None = None) -> list[list[str]]:
    """Apply the example's diffs, write its files, and return its commands (argument lists, ``paths`` replaced)."""
    commands = []
    for language, code in example:
        if language == "diff":
            subprocess.run(["git", "apply", "--unsafe-paths", f"--directory={root.name}", "-"],
                           input=code, text=True, cwd=root.parent, check=True)  # fmt: skip
        elif language == "python":
            name = re.search(r"^# (\S+\.py)", code, flags=re.M)[1]
            (root / name).write_text(code)
        elif language == "yaml":
            name = re.search(r"^# (\S+\.yaml)", code, flags=re.M)[1]
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(code)
        elif language == "bash":
            for line in code.splitlines():
                for user_path, ours in (paths or {}).items():
                    line = line.replace(user_path, ours)
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
    assert set(found) == {"A new folder layout", "A new network option", "A new callback"}

    images = make_catsdogs_folder(tmp_path / "csv_folder", n_per_class=8)
    rows = [f"{p.name},{'kitten' if p.name.startswith('cat') else 'puppy'}" for p in sorted(images.glob("*.jpg"))]
    (images / "labels.csv").write_text("\n".join(["file,label", *rows, "gone.jpg,puppy"]) + "\n")
    layout = copy_repository(tmp_path / "layout")
    (layout_command,) = apply(found["A new folder layout"], layout, {"~/data/my_csv_folder": str(images)})

    network = copy_repository(tmp_path / "network")
    (command,) = apply(found["A new network option"], network)
    callback = copy_repository(tmp_path / "callback")
    (callback_command,) = apply(found["A new callback"], callback)
    runs = {
        "layout": start(
            layout_command,
            layout,
            "trainer.max_epochs=1",
            *SHORT,
            "data.num_workers=0",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run_layout'}",
        ),
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

    # the CSV's labels are the classes; the missing file is reported, not fatal; the checkpoint names the source
    run = tmp_path / "run_layout"
    hp = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["class_names"] == ["kitten", "puppy"] and hp["data"]["source"] == "csv_labels"
    assert "gone.jpg" in (run / "bad_files.txt").read_text()
    split = json.loads((run / "split.json").read_text())
    assert sum(len(v) for v in split.values()) == 16

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
