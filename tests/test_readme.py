"""The README is true: every shell command in its ```bash blocks runs as written, in a test.

What runs how (``tests/readme_commands.py`` has the machinery, this file the tables):

- Every command of every ```bash block of README.md is one test case, ``test_readme_command[L<line> ...]``.
  All of them run once, in README order, in one temporary working directory with ``HOME`` set to a
  temporary folder, as a user would type them in one shell: shell variables (``CKPT=...``) carry over,
  a later command uses what an earlier one made (eval uses a training run's checkpoint). Nothing is
  written into the repository (checked).
- ``python -m alexnet_lightning.X ...`` runs inside the test's process: ``runpy`` with ``sys.argv`` set
  to the README's words plus the SHRINK overrides below (only appended, never replacing a word), Hydra's
  global state cleared between runs. That is the command's own ``__main__`` with its Hydra config from
  the package (``alexnet_lightning/conf``); one process pays the ~8 s of imports once instead of 25 times.
  The exit status is SystemExit's code (1 for an uncaught exception, as Python exits).
- ``python -m alexnet_lightning.serve`` (it runs until stopped) starts as a process on a free port,
  runs alongside the later commands, and passes when ``GET /health`` answers 200; then it gets Ctrl-C.
- ``make TARGET`` runs as a process in the working directory, on a copy of the Makefile whose ``.venv``
  is this interpreter, already installed (``make test`` itself runs ``make install`` for real).
- README paths under ``~`` are small generated folders of the same layout (HOME_PATHS);
  ``outputs/DATE/TIME/...`` (or ``YYYY-MM-DD``/``HH-MM-SS``, ``...``) stands for what the first earlier
  command that made such a path made; ``<same overrides>`` for the overrides of the run it resumes. An
  unknown ``~`` path, ``$VARIABLE``, ``<placeholder>`` or CAPITALS placeholder fails with what to add.
- Each command must exit with 0, or the status its comment names (``# ... exit status 2``), and write
  the files WRITES lists for it in a place the README names (``outputs/<command>/DATE/TIME/``, ...).
- Lines marked in README.md with ``# not run by the README test: REASON`` are skipped (those that need a
  GPU run where CUDA is present); they are counted (MAX_MARKED) and those of this package must still
  compose their config.

Time: 24 commands, about 110 s of CPU on 2 cores (the five 61M-parameter fc-head runs, with their
0.5-0.7 GB checkpoints, take a third); selecting one case with -k still runs them all, as later
commands need earlier ones. Commands run one after another (Hydra names run folders by the second,
and each command's files are told apart by what changed while it ran); only serve overlaps.
"""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable
from pathlib import Path

import fixtures
import pytest
from conftest import REPO, free_port, write_digit_images
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from readme_commands import (
    MARKER,
    Command,
    ReadmeError,
    Result,
    Session,
    Tables,
    documented_places,
    expand_tilde,
    parse_readme,
    place_regex,
    snapshot,
    without_text_placeholders,
    words_of,
)

from alexnet_lightning.config import CONF_DIR

EXTENSION = "an extension example, run by tests/test_extending.py"

README = (REPO / "README.md").read_text()
COMMANDS = parse_readme(README)

# ~/... paths the README uses -> the small folder of the same layout that stands for it (None: an output).
HOME_PATHS: dict[str, Callable[[Path], object] | None] = {
    "~/data/dogs-vs-cats/train": lambda p: fixtures.make_catsdogs_folder(p, n_per_class=8),  # cat.N.jpg, dog.N.jpg
    "~/data/my_images": lambda p: fixtures.make_class_folders(p, ("cats", "dogs", "birds")),  # <class>/*.jpg
    "~/data/flower_photos": lambda p: fixtures.make_class_folders(
        p, ("daisy", "dandelion", "roses", "sunflowers", "tulips")
    ),
    "~/data": lambda p: fixtures.make_fake_mnist(p, compressed=True),  # MNIST/raw/*-ubyte.gz as downloaded
    "~/data/cifar10": lambda p: fixtures.make_fake_cifar10(p, n_train=200),  # cifar-10-batches-py/ pickles
    "~/data/imagenet": lambda p: fixtures.make_imagenet_folder(p, val="flat", n_train=30),  # train/<wnid>/, flat val/
    "~/photos": lambda p: write_digit_images(p, per_class=2),  # real digits as PNGs, <digit>/<n>.png
    "~/data/catsdogs": None,  # prepare's destination
}

# <placeholders> in README commands and what they stand for (handled in readme_commands.Session).
TEXT_PLACEHOLDERS = {"<same overrides>": "the overrides of the run being resumed (its .hydra/overrides.yaml)"}

# Appended to each command to make its run small; keys: the module, or "make TARGET".
TRAIN_SHRINK = (
    "++trainer.max_epochs=1",
    "++trainer.limit_train_batches=1",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "++data.num_workers=0",
    "++data.batch_size=8",
    "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_model_summary=false",
    "++callbacks.progress_bar=null",
    "++callbacks.validation_images=null",  # TensorBoard figures, about 1 s a run: tests/test_tensorboard.py checks them
)
SHRINK: dict[str, tuple[str, ...]] = {
    "alexnet_lightning.train": TRAIN_SHRINK,
    "alexnet_lightning.eval": ("speed_seconds=0.1", "num_workers=0"),
    "alexnet_lightning.explain": ("num_workers=0", "embed_max=100"),
    "alexnet_lightning.predict": ("num_workers=0",),
    "alexnet_lightning.export": (),
    "alexnet_lightning.inspect_data": ("++data.num_workers=0",),
    "alexnet_lightning.prepare": (),
    "alexnet_lightning.samples": (),
    "alexnet_lightning.serve": ("port={port}", "log_level=warning"),
    "make train": ("ARGS=" + " ".join(TRAIN_SHRINK),),
}
# More for commands holding these words ("key=" matches any value of key).
IMAGENET = ("experiment=imagenet_alexnet", "experiment=imagenet_alexnet_fast")  # 224 px recipes
FC_HEAD = ("model.head=fc", "experiment=catsdogs", "experiment=flowers", *IMAGENET)  # commands that train the fc head
NO_CHECKPOINTS = ("++callbacks.model_checkpoint=null", "++callbacks.last_checkpoint=null")
SHRINK_WHEN: dict[tuple[str, ...], tuple[str, ...]] = {
    ("alexnet_lightning.train", "hparams_search=optuna"): ("hydra.sweeper.n_trials=2",),
    ("alexnet_lightning.train", "ckpt_path="): ("++trainer.max_epochs=2",),  # resumed: one epoch more than it had
    # torchvision's 4096-4096 head (57 M parameters): 0.7 GB of checkpoints a run, the slowest part of this test
    **{("alexnet_lightning.train", words): NO_CHECKPOINTS for words in FC_HEAD},
    # the same code path at 64 px: a few seconds faster each
    **{("alexnet_lightning.train", words): (*NO_CHECKPOINTS, "++data.image_size=64") for words in IMAGENET},
}
BACKGROUND = {"alexnet_lightning.serve": "/health"}  # runs until stopped: this URL path must answer 200

# What each command writes into its run directory (most specific key wins; "N/x": x in every run of a sweep).
TRAIN_RUN = (
    "config_resolved.yaml",
    ".hydra/",
    "split.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "metrics.json",
    "curves.png",
    "train.log",
    "tensorboard/",
)
SWEEP = ("summary.csv", "summary.md", "summary.png", "N/metrics.json", "N/config_resolved.yaml")
WRITES: dict[tuple[str, ...], tuple[str, ...] | None] = {
    ("alexnet_lightning.train",): TRAIN_RUN,
    ("make", "train"): TRAIN_RUN,
    **{("alexnet_lightning.train", words): tuple(f for f in TRAIN_RUN if "ckpt" not in f) for words in FC_HEAD},
    # resumed into a new run directory: a best.ckpt only for an epoch better than the earlier run's best
    ("alexnet_lightning.train", "ckpt_path="): tuple(f for f in TRAIN_RUN if f != "checkpoints/best.ckpt"),
    ("alexnet_lightning.train", "trainer=debug"): ("config_resolved.yaml", "split.json", "metrics.json"),  # 1 batch
    ("alexnet_lightning.train", "debug=default"): ("config_resolved.yaml", "split.json", "metrics.json"),  # 1 batch
    ("alexnet_lightning.train", "-m"): SWEEP,
    ("alexnet_lightning.train", "hparams_search=optuna"): (*SWEEP, "optimization_results.yaml"),
    ("alexnet_lightning.eval",): (
        "classification_report.txt",
        "classification_report.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "top_losses.png",
        "top_losses_gradcam.png",
        "metrics.json",
        "tensorboard/",
    ),
    ("alexnet_lightning.predict",): ("predictions.csv", "predictions.png"),
    ("alexnet_lightning.export", "format=onnx"): ("model.onnx", "metadata.json"),
    ("alexnet_lightning.export", "format=torch_export"): ("model.pt2", "metadata.json"),
    ("alexnet_lightning.explain",): ("attributions.png", "feature_maps/", "filters.png", "explanations.csv"),
    ("alexnet_lightning.explain", "top="): ("attributions.png", "filters.png", "neighbours.png", "embedding.png"),
    ("alexnet_lightning.inspect_data",): ("samples.png",),
    ("alexnet_lightning.prepare", "--dry-run"): (),  # a dry run writes nothing
    ("alexnet_lightning.serve",): None,  # nothing to check on disk: it answers GET /health
}

# Why a README line may be marked '# not run by the README test: REASON', and at most how many are.
MARK_REASONS = {
    "needs a GPU": "runs here too when CUDA is present",
    "needs a SLURM cluster": "sbatch/srun",
    "needs several nodes": "torchrun across machines",
    "installs packages": "pip would change the environment the tests run in; make install does it",
    "is the test suite": "make test runs this test",
    "needs the full mlflow package (pip install mlflow)": "mlflow ui: the trackers extra has MLflow's client only",
    "uploads to W&B (an account and the network)": "wandb sync: the tests have neither",
    EXTENSION: "How to extend: the command needs the example's change, so tests/test_extending.py runs it on a copy",
}
MAX_MARKED = 10  # not counting the extension examples, which do run (in tests/test_extending.py)
RUN_WHEN = {"needs a GPU": lambda: __import__("torch").cuda.is_available()}

# README commands that fail today because of a bug in the package: (words in the command, the failure).
KNOWN_FAILURES: dict[str, str] = {}


def _has(words: list[str], wanted: str) -> bool:
    return any(w == wanted or (wanted.endswith("=") and w.startswith(wanted)) for w in words)


def program_words(command: Command) -> list[str]:
    """``[module, *args]`` for ``python -m module args``, ``[make, *args]`` for make; else the words."""
    words = words_of(without_text_placeholders(command.code))
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words = words[1:]
    if words[:1] and words[0] in ("python", "python3") and words[1:2] == ["-m"]:
        return words[2:]
    return words


def shrink(program: str, args: list[str]) -> list[str]:
    if program == "make":
        key = "make " + " ".join(a for a in args if "=" not in a)
        if key not in SHRINK:
            raise ReadmeError(f"{key}: add it to SHRINK in tests/test_readme.py (an empty tuple if it needs nothing)")
        given = next((a.split("=", 1)[1] for a in args if a.startswith("ARGS=")), "")
        return [f"ARGS={given} {a[5:]}" if given and a.startswith("ARGS=") else a for a in SHRINK[key]]
    if program not in SHRINK:
        raise ReadmeError(f"{program}: add it to SHRINK in tests/test_readme.py (an empty tuple if it needs nothing)")
    extra = [w for key, more in SHRINK_WHEN.items() if key[0] == program for w in more if _all(args, key[1:])]
    return [w.format(port=free_port()) for w in (*SHRINK[program], *extra)]


def _all(words: list[str], wanted: tuple[str, ...]) -> bool:
    return all(_has(words, w) for w in wanted)


def expected_writes(command: Command) -> tuple[str, ...] | None:
    """The files WRITES lists for the command (its most specific key); None when there is nothing to check."""
    words = program_words(command)
    keys = [k for k in WRITES if words[:1] == [k[0]] and _all(words[1:], k[1:])]
    return WRITES[max(keys, key=len)] if keys else None


def _marker_ok(command: Command) -> bool:
    return command.marker is not None and command.marker in MARK_REASONS


def _param(command: Command):
    marks = [pytest.mark.slow]
    for words, reason in KNOWN_FAILURES.items():
        if words in command.code:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
    return pytest.param(command, marks=marks, id=command.id)


# ---------------------------------------------------------------------------- the run of every command
@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory):
    """Runs every README command once, in order; returns the session and each command's result."""
    root = tmp_path_factory.mktemp("readme")
    session = Session(root, REPO, Tables(HOME_PATHS, TEXT_PLACEHOLDERS, shrink, BACKGROUND))
    for path, make in HOME_PATHS.items():
        if make is not None:
            make(session.home / path[2:])
    repo_before = _repo_files()
    results: dict[str, Result] = {}
    start, cpu = time.monotonic(), _cpu_seconds()
    try:
        for command in COMMANDS:
            reason = command.marker
            if reason is not None and not RUN_WHEN.get(reason, lambda: False)():
                results[command.id] = Result(skipped=f"marked in README.md: {reason}")
                session.made.append(set())
                continue
            results[command.id] = session.run(command)
        session.finish()
    finally:
        session.kill()
    timing = (time.monotonic() - start, _cpu_seconds() - cpu)
    yield session, results, repo_before, timing
    for path in root.rglob("*"):  # pytest keeps the last runs' folders: not their 4 GB of checkpoints
        if path.is_file() and path.stat().st_size > 10 * 2**20:
            path.unlink()


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _repo_files() -> set[Path]:
    return set(snapshot(REPO, skip=frozenset({".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"})))


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS])
def test_readme_command(command: Command, readme_run) -> None:
    session, results, _, _ = readme_run
    result = results[command.id]
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.error is None, result.error
    shown = " ".join(result.argv) or command.code
    assert result.status == command.expected_status, (
        f"README line {command.line}: `{shown}` exited with {result.status}, "
        f"not {command.expected_status}:\n{result.tail()}"
    )
    writes = expected_writes(command)
    if writes is not None and result.argv and command.expected_status == 0:  # an error example writes what it may
        check_writes(session, command, result, writes)


def check_writes(session: Session, command: Command, result: Result, writes: tuple[str, ...]) -> None:
    """The files are in one directory the command wrote, and that directory is a place the README names."""
    if not writes:  # writes nothing (outside the caches under HOME)
        made = sorted(p for p in result.touched if session.home / ".cache" not in p.parents)
        assert not made, f"README line {command.line}: `{command.code}` should write nothing but wrote {made}"
        return
    roots = {p.parent.relative_to(session.cwd) for p in result.touched if session.cwd in p.parents}
    roots = {a for r in roots for a in (r, *r.parents)}
    found = [r for r in sorted(roots) if all(_holds(session.cwd / r, w) for w in writes)]
    missing = {w: sum(_holds(session.cwd / r, w) for r in roots) for w in writes}
    assert found, (
        f"README line {command.line}: `{command.code}` should write {', '.join(writes)} into its run directory; "
        f"missing everywhere it wrote: {[w for w, n in missing.items() if not n]}\n"
        f"it wrote: {sorted(str(p.relative_to(session.root)) for p in result.touched)[:40]}"
    )
    run_dir = max(found, key=lambda r: len(r.parts)).as_posix()
    program = program_words(command)
    name = program[-1] if program[0] == "make" else program[0].rsplit(".", 1)[-1]
    given = [w.split("=", 1)[1] for w in result.argv if w.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    if given:
        assert run_dir == given[-1].rstrip("/"), f"README line {command.line}: wrote into {run_dir}, not {given[-1]}"
        return
    assert any(place_regex(place, name).fullmatch(run_dir) for place in _places()), (
        f"README line {command.line}: `{command.code}` wrote into {run_dir}/, not a place the README names "
        f"({', '.join(_places())})"
    )


def _places() -> list[str]:
    """The README's run-directory layouts, and the sweep directories above their ``N``."""
    places = documented_places(README)
    return places + [p.rsplit("/", 1)[0] for p in places if p.endswith("/N")]


def _holds(folder: Path, name: str) -> bool:
    if name.startswith("N/"):
        runs = [d for d in folder.iterdir() if d.is_dir() and d.name.isdigit()] if folder.is_dir() else []
        return bool(runs) and all(_holds(d, name[2:]) for d in runs)
    if name.endswith("/"):
        return (folder / name).is_dir() and any((folder / name).rglob("*"))
    return (folder / name).is_file() and (folder / name).stat().st_size > 0


@pytest.mark.slow
def test_readme_commands_write_nothing_into_the_repository(readme_run) -> None:
    _, results, before, (seconds, cpu) = readme_run
    made = sorted(str(p.relative_to(REPO)) for p in _repo_files() - before)
    assert not made, f"README commands wrote into the repository: {made[:20]}"
    ran = {c.id: results[c.id] for c in COMMANDS if results[c.id].argv}
    print(f"\n{len(ran)} of {len(COMMANDS)} README commands ran in {seconds:.0f} s ({cpu:.0f} s of CPU):")
    for name, result in ran.items():
        print(f"{result.seconds:6.1f} s  exit {result.status}  {name}")


# ---------------------------------------------------------------------------- fast checks of the README's text
def test_every_readme_command_is_run_or_marked_for_a_known_reason() -> None:
    assert len(COMMANDS) >= 20, f"only {len(COMMANDS)} commands found in README.md's ```bash blocks"
    extension = [c for c in COMMANDS if c.marker == EXTENSION]
    section = README.index("## How to extend"), README.index("\n## ", README.index("## How to extend") + 3)
    for c in extension:  # only the examples that tests/test_extending.py applies and runs
        assert section[0] < len("\n".join(README.splitlines()[: c.line])) < section[1], f"L{c.line}: {c.code}"
    marked = [c for c in COMMANDS if c.marker is not None and c.marker != EXTENSION]
    unknown = [f"L{c.line}: {c.marker!r}" for c in marked + extension if not _marker_ok(c)]
    assert not unknown, f"'# {MARKER} REASON' needs one of {sorted(MARK_REASONS)}: {unknown}"
    assert len(marked) <= MAX_MARKED, (
        f"{len(marked)} README commands are marked as not run (at most {MAX_MARKED}): "
        + "; ".join(f"L{c.line} {c.marker}" for c in marked)
    )
    for command in COMMANDS:
        if command.marker is not None:
            continue
        words = program_words(command)
        if not words:
            continue  # an assignment such as CKPT=...
        assert words[0].startswith("alexnet_lightning.") or words[0] == "make", (
            f"README line {command.line}: the test cannot run `{command.code}`: mark it "
            f"('# {MARKER} REASON') or teach tests/readme_commands.py"
        )
        shrink(words[0], words[1:])  # known to SHRINK
        assert any(words[:1] == [k[0]] for k in WRITES), (
            f"README line {command.line}: add what `{command.code}` writes to WRITES in tests/test_readme.py "
            "(None: nothing to check)"
        )


def test_every_readme_path_and_placeholder_is_known() -> None:
    """``~`` paths, ``$VARIABLES`` and placeholders of the commands that run are in this file's tables."""
    assigned: set[str] = set()
    for command in COMMANDS:
        if command.marker is not None:
            continue
        code = command.code
        for placeholder in re.findall(r"<[A-Za-z][^<>]*>", code):
            assert placeholder in TEXT_PLACEHOLDERS, (
                f"README line {command.line}: add {placeholder} to TEXT_PLACEHOLDERS in tests/test_readme.py"
            )
            code = code.replace(placeholder, "")
        for word in words_of(code):
            for path in re.findall(r"(?:^|=)(~[^\s,]*)", word):
                assert path.rstrip("/") in HOME_PATHS, (
                    f"README line {command.line}: unknown path {path}: add it to HOME_PATHS in tests/test_readme.py"
                )
            for name in re.findall(r"\$\{?([A-Za-z_]\w*)", word):
                assert name in assigned or name == "HOME", (
                    f"README line {command.line}: ${name} is set by no earlier README command"
                )
            if re.fullmatch(r"[A-Za-z_]\w*=.*", word):
                assigned.add(word.split("=", 1)[0])


def test_marked_commands_of_this_package_compose() -> None:
    """A marked line is not run, but its overrides must still name real config groups and keys."""
    checked = 0
    for command in COMMANDS:
        if command.marker in (None, EXTENSION):  # an extension example composes only after its change
            continue
        code = re.sub(r"\$\{?[A-Za-z_]\w*\}?", "1", command.code)  # $SLURM_JOB_ID
        words = [expand_tilde(w, "/home/user") for w in words_of(code)]
        module = next((w for w in words if w.startswith("alexnet_lightning.")), None)
        if module is None:
            continue
        overrides = _first_of_each_sweep([w for w in words[words.index(module) + 1 :] if w != "-m"])
        name = module.rsplit(".", 1)[1]
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
                compose("config" if name == "train" else name, overrides=overrides, return_hydra_config=True)
        except Exception as e:
            raise AssertionError(f"README line {command.line}: `{command.code}` does not compose: {e}") from e
        finally:
            GlobalHydra.instance().clear()
        checked += 1
    assert checked, "no marked README command of this package was composed"


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    """``a=1,2`` -> ``a=1``: the overrides of a sweep's first run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
        for o in parsed
    ]


def test_expected_files_are_named_in_the_readme() -> None:
    """WRITES lists only files the README says the commands write (``name.txt/.csv`` names both)."""
    for files in WRITES.values():
        for entry in files or ():
            name = entry.removeprefix("N/")
            if name.endswith("/"):
                assert f"{name}" in README, f"WRITES lists the folder {entry}, which README.md does not name"
                continue
            base, _, ext = name.split("/")[-1].partition(".")
            spelled = re.findall(rf"(?<![\w.]){re.escape(base)}(\.[\w.]*\w)((?:/\.\w+)*)", README)
            extensions = {e for first, more in spelled for e in (first, *more.split("/")[1:])}
            assert f".{ext}" in extensions, f"WRITES lists {entry}, which README.md does not name"


# ---------------------------------------------------------------------------- the machinery, on made-up commands
def _session(tmp_path: Path) -> Session:
    return Session(tmp_path, REPO, Tables(HOME_PATHS, TEXT_PLACEHOLDERS, shrink, BACKGROUND))


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("python -m alexnet_lightning.train dataset=imagefolder data_dir=~/data/new", "add it to HOME_PATHS"),
        ("python -m alexnet_lightning.eval ckpt_path=$MODEL", "$MODEL is not set by an earlier README command"),
        ("python -m alexnet_lightning.train <my overrides>", "add it to TEXT_PLACEHOLDERS"),
        ("python -m alexnet_lightning.predict ckpt_path=FILE", "FILE looks like a placeholder"),
        (
            "python -m alexnet_lightning.eval ckpt_path=outputs/DATE/TIME/checkpoints/x.ckpt",
            "no earlier README command",
        ),
        ("python -m alexnet_lightning.train data_dir=/data/x", "absolute path"),
        ("python -m alexnet_lightning.train | tee log", "shell syntax"),
        ("curl http://127.0.0.1:8000/health", "cannot run 'curl'"),
        ("make tensorboard", "add it to SHRINK"),
    ],
)
def test_a_command_the_test_does_not_know_fails_saying_what_to_add(tmp_path: Path, code: str, says: str) -> None:
    result = _session(tmp_path).run(Command(1, 0, code, ""))
    assert result.error is not None and says in result.error, result.error


def test_readme_text_is_read_as_bash_reads_it() -> None:
    text = (
        "```bash\n# a comment line\n\nA=1 python -m x a=1 \\\n"
        "    b='#2'   # say; not run by the README test: needs a GPU\n"
        "echo 'x # y'#z  # fails with exit status 2\n```\n```python\nprint(1)\n```\n```\nout # put\n```\n"
    )
    first, second = parse_readme(text)
    assert (first.line, first.code, first.marker, first.expected_status) == (
        4,
        "A=1 python -m x a=1 b='#2'",
        "needs a GPU",
        0,
    )
    assert (second.code, second.comment, second.expected_status) == ("echo 'x # y'#z", "fails with exit status 2", 2)
    assert words_of(first.code) == ["A=1", "python", "-m", "x", "a=1", "b=#2"]


def test_placeholders_name_the_first_earlier_run_that_made_the_path(tmp_path: Path) -> None:
    session = _session(tmp_path)
    for stamp in ("2026-01-02/03-04-05", "2026-01-02/03-04-09"):
        run = session.cwd / "outputs" / stamp
        (run / "checkpoints").mkdir(parents=True)
        (run / ".hydra").mkdir()
        (run / "checkpoints" / "last.ckpt").touch()
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={stamp[-1]}\n")
        session.made.append({run / "checkpoints" / "last.ckpt", run / ".hydra" / "overrides.yaml"})
    code = "python -m alexnet_lightning.train <same overrides> ckpt_path=outputs/DATE/TIME/checkpoints/last.ckpt"
    _, words = session.resolve(Command(1, 0, f"{code} hydra.run.dir=outputs/DATE/TIME", ""))
    run = "outputs/2026-01-02/03-04-05"
    assert words[3:] == ["seed=5", f"ckpt_path={run}/checkpoints/last.ckpt", f"hydra.run.dir={run}"]
    _, words = session.resolve(Command(2, 0, "python -m alexnet_lightning.prepare catsdogs ~/data/catsdogs", ""))
    assert words[-1] == f"{session.home}/data/catsdogs"
    assert place_regex("outputs/<command>/DATE/TIME", "eval").fullmatch("outputs/eval/2026-01-02/03-04-05")
    assert shrink("make", ["train", "ARGS=seed=3"]) == ["ARGS=seed=3 " + " ".join(TRAIN_SHRINK)]


@pytest.mark.parametrize(
    ("folder", "names", "says"),
    [
        ("outputs/predict/2026-01-02/03-04-05", ("predictions.csv", "predictions.png"), None),
        (
            "outputs/predict/2026-01-02/03-04-05",
            ("predictions.csv",),
            "missing everywhere it wrote: ['predictions.png']",
        ),
        ("results/predict", ("predictions.csv", "predictions.png"), "not a place the README names"),
    ],
)
def test_files_must_be_where_the_readme_says(tmp_path: Path, folder: str, names: tuple, says: str | None) -> None:
    session = _session(tmp_path)
    command = Command(1, 0, "python -m alexnet_lightning.predict ckpt_path=x.ckpt inputs=y", "")
    result = Result(status=0, argv=words_of(command.code))
    for name in names:
        (session.cwd / folder).mkdir(parents=True, exist_ok=True)
        (session.cwd / folder / name).write_text("x")
        result.touched.add(session.cwd / folder / name)
    if says is None:
        check_writes(session, command, result, expected_writes(command))
    else:
        with pytest.raises(AssertionError, match=re.escape(says)):
            check_writes(session, command, result, expected_writes(command))
