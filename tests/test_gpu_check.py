"""benchmarks/gpu_check.py: the one-shot GPU check's whole code path on the CPU (--tiny), and its budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # benchmarks/ is no package: by path

PARTS = ["environment", "throughput", "mnist", "catsdogs", "catsdogs_best"]
ROWS = gpu_check.THROUGHPUT_ROWS.split(",")


@pytest.mark.slow
def test_tiny_check_runs_every_part_and_writes_the_json_and_the_markdown_rows(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "benchmarks/gpu_check.py", "--tiny", "--out", str(out), "--work", str(tmp_path / "w")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    log = (out / "gpu_check.log").read_text()

    assert {"commit", "device", "torch", "command", "parts", "budget_s", "wall_s"} <= set(report)
    assert list(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["status"] == "ok", f"{name}: {part['error']}\n{log[-3000:]}"
        assert {"budget_s", "wall_s", "result"} <= set(part)

    env = report["parts"]["environment"]["result"]
    assert env["cuda_initialized_before_part"] is False and report["torch"] == env["torch"]
    rows = report["parts"]["throughput"]["result"]["rows"]
    assert list(rows) == ROWS
    assert {k: r["status"] for k, r in rows.items() if r["status"] != "ok"} == {"nvjpeg": "n/a"}  # no CUDA here
    assert "picked pipeline=cache" in rows["default"]["label"]
    assert rows["limit"]["of_limit"] == 1.0 and "of_limit" not in rows["data_seed"]

    for name in ("mnist", "catsdogs", "catsdogs_best"):
        run = report["parts"][name]["result"]
        assert run["command"].startswith(f"python -m alexnet_lightning.train experiment={name} ")
        assert run["epochs_run"] == 1 and run["stopped_by"] == "max_epochs" and len(run["epochs"]) == 1
        assert {"val/acc_best", "test/acc"} <= set(run["metrics"])
        assert run["capped"]["max_epochs"]["run"] == 1 and run["capped"]["max_time"]
    mnist = report["parts"]["mnist"]["result"]
    assert 0 <= mnist["epochs"][0]["test_acc"] <= 1 and mnist["target"] == gpu_check.TARGET
    holdout = report["parts"]["catsdogs"]["result"]["command"]
    assert "data.options.test_dir=" in holdout and holdout.split("test_dir=")[1].split()[0].endswith("holdout")

    markdown = (out / "gpu_check.md").read_text()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    labels = [r["label"] for r in rows.values()] + [title.split(" (")[0] for _, title in gpu_check.RECIPES.values()]
    for label in labels:
        row = next((line for line in table_rows if line.startswith(f"| {label}")), None)
        assert row, f"no Markdown row for {label!r}:\n{markdown}"
        assert f"`{report['commit'][:7]}`" in row and report["device"] in row and report["torch"] in row
        assert "`python " in row  # the command


def test_budgets_give_leftover_time_to_the_next_part_and_keep_the_later_plans() -> None:
    plan = {"a": (100, 20), "b": (100, 30), "c": (50, 10)}
    assert gpu_check.part_budget(plan, "a", 250) == 100  # 250 - 150 for b and c
    assert gpu_check.part_budget(plan, "b", 220) == 150  # leftover, at most 1.5 x its plan
    assert gpu_check.part_budget(plan, "b", 160) == 110  # 160 - 50 for c
    assert gpu_check.part_budget(plan, "b", 70) == 60  # late: c keeps only its least
    assert gpu_check.part_budget(plan, "c", 5) == 5  # below its least: the check skips it


def test_best_recipe_epochs_fit_its_time_at_the_seed_runs_pace() -> None:
    epochs = [{"train_s": 5.0}, {"train_s": 7.0}, {"train_s": 9.0}]  # 2 s an epoch after the first
    assert gpu_check.best_epochs(epochs, 50)[0] == 21  # 85 % of 50 s / 2 s
    assert gpu_check.best_epochs(epochs, 1000)[0] == 60  # never more than the recipe
    assert gpu_check.best_epochs(epochs, 5)[0] == 10
    assert gpu_check.best_epochs([], 50)[0] == 30
    assert gpu_check.max_time(95) == "00:00:01:35"
