"""Two nodes of one CPU process each, simulated on localhost: started by torchrun, and by SLURM's variables.

Each node runs in a working directory of its own, as on a machine of its own: whatever a process of
node 1 wrote would show there. One training per mechanism serves all the assertions; the SLURM one
resumes the torchrun one's ``last.ckpt`` for one more epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import pytest
from conftest import REPO, free_port
from omegaconf import OmegaConf

from alexnet_lightning.distributed import leave_run_files_to_rank_zero
from alexnet_lightning.module import AlexNetClassifier

TWO_NODES = ("trainer=ddp_sim", "trainer.num_nodes=2", "trainer.devices=1")
TINY = (
    "data.image_size=64",
    "data.batch_size=32",
    "data.num_workers=0",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=2",  # test runs the whole test split: 179 digits, odd for 2 processes
    "callbacks.progress_bar=null",
)
OUTER_LAUNCHER = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Nodes:
    """Two nodes' processes, run to the end: node<r>/ (working directories), node<r>.out, records/."""

    base: Path
    returncodes: list[int]

    def cwd(self, rank: int) -> Path:
        return self.base / f"node{rank}"

    def output(self) -> str:
        return "\n".join(f"--- node {r}:\n" + (self.base / f"node{r}.out").read_text()[-3000:] for r in (0, 1))

    def seen(self) -> list[dict[str, list[int]]]:
        """Per rank, the dataset positions it computed on: ``{"train/0": [...], "test/1": [...]}``."""
        return [json.loads((self.base / "records" / f"rank{r}.json").read_text()) for r in (0, 1)]


def outer_launcher_variables() -> list[str]:
    """What an outer SLURM job or torchrun (the one running pytest, if any) set: no node may inherit it."""
    return [name for name in os.environ if name.startswith(("SLURM_", "TORCHELASTIC_")) or name in OUTER_LAUNCHER]


def node_env(base: Path, rank: int, **variables: str) -> dict[str, str]:
    """This checkout importable, a cache per node, nothing of an outer launcher, the node's ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in outer_launcher_variables() and k != "HYDRA_FULL_ERROR"}
    return {**env, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(base / f"cache{rank}"), **variables}


def train_command(base: Path, *overrides: str) -> list[str]:
    """The training command of every node; each rank writes what it computed on into ``base/records``."""
    record = "+callbacks.record._target_=tests.rank_samples.RecordSamples", f"+callbacks.record.out_dir={base}/records"
    return ["-m", "alexnet_lightning.train", *TWO_NODES, *TINY, *record, *overrides]


def start_nodes(base: Path, commands: list[list[str]], envs: list[dict[str, str]], timeout: int = 300) -> Nodes:
    """Start both nodes together, each in its own working directory, and wait for both."""
    procs = []
    for rank, (command, env) in enumerate(zip(commands, envs, strict=True)):
        (base / f"node{rank}").mkdir(parents=True)
        with (base / f"node{rank}.out").open("w") as out:
            procs.append(subprocess.Popen(command, cwd=base / f"node{rank}", env=env, stdout=out, stderr=out))
    try:
        return Nodes(base, [proc.wait(timeout=timeout) for proc in procs])
    finally:
        for proc in procs:
            if proc.poll() is None:  # the other node failed and this one waits for it
                proc.kill()
                proc.wait()


def run_files(run: Path) -> set[str]:
    return {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}


def assert_split_between_ranks(seen: list[dict[str, list[int]]], key: str, whole: int | None = None) -> None:
    """No item on both ranks; with ``whole``, every one of the split's items on one of them."""
    first, second = seen[0][key], seen[1][key]
    assert first and second and not set(first) & set(second), f"{key}: both ranks computed on the same items"
    if whole is not None:
        assert sorted(first + second) == list(range(whole)), f"{key}: not each of the {whole} items exactly once"


@pytest.fixture(scope="module")
def torchrun(tmp_path_factory: pytest.TempPathFactory) -> Nodes:
    """The README's torchrun command on each node, node rank 0 and 1, one epoch; relative run directory."""
    base = tmp_path_factory.mktemp("torchrun")
    port = free_port()
    commands = [
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
         *train_command(base, "trainer.max_epochs=1", "hydra.run.dir=outputs/run")]
        for rank in (0, 1)
    ]  # fmt: skip
    return start_nodes(base, commands, [node_env(base, rank) for rank in (0, 1)])


@pytest.mark.slow  # real processes: 2 torchrun agents and 2 training processes, ~10 s of imports each
def test_torchrun_two_nodes_split_the_data_rank_zero_writes_and_tests_exactly(torchrun: Nodes) -> None:
    assert torchrun.returncodes == [0, 0], torchrun.output()
    run = torchrun.cwd(0) / "outputs" / "run"

    # node 1 wrote nothing: no run directory of its own, no .hydra/, no train.log, no checkpoint
    assert not any(torchrun.cwd(1).iterdir()), sorted(torchrun.cwd(1).rglob("*"))
    expected = {"metrics.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "curves.png", "split.json"}
    assert expected | {"config_resolved.yaml", "train.log", ".hydra/config.yaml"} <= run_files(run)
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and record["metrics"]["epochs"] == 1

    # each rank trained and validated on its own batches, and tested on its own part of the test split
    cfg = OmegaConf.load(run / "config_resolved.yaml")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("test")
    seen = torchrun.seen()
    assert_split_between_ranks(seen, "train/0")
    assert_split_between_ranks(seen, "val/0")
    assert_split_between_ranks(seen, "test/1", whole=len(datamodule.splits["test"]))

    # so the synced test metrics are those of one process on the same images and checkpoint
    model = AlexNetClassifier.load_from_checkpoint(run / "checkpoints" / "best.ckpt", weights_only=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (single,) = trainer.test(model, datamodule=datamodule, verbose=False)
    assert record["metrics"]["test/acc"] == pytest.approx(single["test/acc"], abs=1e-6)
    assert record["metrics"]["test/loss"] == pytest.approx(single["test/loss"], abs=1e-6)


@pytest.mark.slow  # real processes: 2 training processes, ~10 s of imports each
def test_slurm_two_nodes_resume_one_more_epoch(torchrun: Nodes, tmp_path: Path) -> None:
    """``srun`` runs the same command on every task with SLURM_PROCID 0 and 1 (here: no srun on the machine)."""
    assert torchrun.returncodes == [0, 0], "the torchrun run this one resumes failed"
    last = torchrun.cwd(0) / "outputs" / "run" / "checkpoints" / "last.ckpt"
    run = tmp_path / "node0" / "outputs" / "job_4242"  # one absolute run directory for all tasks, as with sbatch
    resume = ("trainer.max_epochs=2", f"ckpt_path={last}", f"hydra.run.dir={run}")
    command = [sys.executable, *train_command(tmp_path, *resume)]
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "alexnet",  # not bash/interactive, which Lightning takes for a shell, not a job
        "SLURM_NNODES": "2",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NODELIST": "127.0.0.1",
        "SLURM_LOCALID": "0",
        "MASTER_PORT": str(free_port()),  # else 15000 + the job id's last 4 digits
    }
    envs = [node_env(tmp_path, r, **slurm, SLURM_PROCID=str(r), SLURM_NODEID=str(r)) for r in (0, 1)]
    nodes = start_nodes(tmp_path, [command, command], envs)
    assert nodes.returncodes == [0, 0], nodes.output()

    # the resumed run trained epoch 1 only, each rank on its own batches of that epoch's order
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and record["metrics"]["epochs"] == 2
    seen = nodes.seen()
    assert [sorted(s) for s in seen] == [["test/2", "train/1", "val/1"]] * 2
    assert_split_between_ranks(seen, "train/1")
    assert seen[0]["train/1"] != torchrun.seen()[0]["train/0"], "epoch 1 repeated epoch 0's order"
    assert_split_between_ranks(seen, "test/2", whole=len(json.loads((run / "split.json").read_text())["test"]))

    # rank 1 wrote nothing: not in its own directory, not into rank 0's (Hydra's train.log appends)
    assert not any(nodes.cwd(1).iterdir()), sorted(nodes.cwd(1).rglob("*"))
    assert (run / "train.log").read_text().count("digits: 10 classes") == 1
    assert {"metrics.json", "checkpoints/last.ckpt", "curves.png", "split.json"} <= run_files(run)


QUIET = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]


@pytest.mark.parametrize(
    ("variables", "added"),
    [
        ({"TORCHELASTIC_RUN_ID": "none", "RANK": "1", "LOCAL_RANK": "0"}, QUIET),  # torchrun, node 1
        ({"TORCHELASTIC_RUN_ID": "none", "RANK": "0", "LOCAL_RANK": "0"}, []),
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "train"}, QUIET),  # srun, task 1
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "interactive"}, []),  # Lightning ignores SLURM
        ({"LOCAL_RANK": "1"}, []),  # a process Lightning started itself: its parent pins its run directory
        ({}, []),
    ],
)
def test_only_rank_above_zero_of_torchrun_or_srun_leaves_the_run_files_to_rank_zero(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], added: list[str]
) -> None:
    for name in outer_launcher_variables():
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["train", "seed=1"])
    leave_run_files_to_rank_zero()
    assert sys.argv == ["train", "seed=1", *added]
