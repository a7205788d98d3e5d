"""README.md's shell commands: parsed from its ```bash blocks, resolved and run as a user would.

The machinery of ``tests/test_readme.py``, which holds the tables (paths, placeholders, shrink
overrides, expected files). Nothing here knows a particular README command.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "not run by the README test:"
SHELL_BLOCKS = ("bash", "sh", "shell")
NAME = r"[A-Za-z_][A-Za-z0-9_]*"

# Placeholders for a run's directory: DATE/TIME as the README writes them, YYYY-MM-DD/HH-MM-SS too.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_])(DATE|TIME|YYYY-MM-DD|HH-MM-SS)(?![A-Za-z0-9_])|(?:(?<=/)|^)\.\.\.(?=/|$)")
_GROUP = {"DATE": "DATE", "YYYY-MM-DD": "DATE", "TIME": "TIME", "HH-MM-SS": "TIME"}
_REGEX = {"DATE": r"\d{4}-\d{2}-\d{2}", "TIME": r"\d{2}-\d{2}-\d{2}"}


class ReadmeError(Exception):
    """A README command the test cannot resolve or run as written: the message says what to add to the test."""


@dataclass(frozen=True)
class Command:
    """One shell command of a README code block, continuation lines joined, the comment split off."""

    line: int  # README line where it starts
    block: int  # which shell block (0-based)
    code: str  # the command as written, without the comment
    comment: str

    @property
    def marker(self) -> str | None:
        """The reason after ``# ... not run by the README test: REASON``, or None."""
        if MARKER not in self.comment:
            return None
        return self.comment.split(MARKER, 1)[1].strip().rstrip(".")

    @property
    def expected_status(self) -> int:
        """0, or the status the comment names (``# ... exit status 2``)."""
        found = re.search(r"exit (?:status|code) (\d+)", self.comment)
        return int(found.group(1)) if found else 0

    @property
    def id(self) -> str:
        text = " ".join(self.code.split())
        return f"L{self.line} {text if len(text) <= 90 else text[:87] + '...'}"


def split_comment(line: str) -> tuple[str, str]:
    """``code  # comment`` -> (code, comment), as bash reads it: ``#`` starts a comment only at a word's start."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
        i += 1
    return line.rstrip(), ""


def parse_readme(text: str) -> list[Command]:
    """Every command of the README's shell code blocks, in order."""
    commands: list[Command] = []
    lines = text.splitlines()
    block, inside, pending, start = -1, False, "", 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            if inside:
                if pending:
                    raise ReadmeError(f"README line {start}: a command ends with '\\' at the end of its block")
                inside = False
            elif stripped[3:].strip().lower() in SHELL_BLOCKS:
                inside, block = True, block + 1
            continue
        if not inside:
            continue
        if not pending and (not stripped or stripped.startswith("#")):
            continue  # a blank line or a comment line
        if not pending:
            start = number
        if raw.rstrip().endswith("\\") and "#" not in split_comment(raw)[1]:
            pending += raw.rstrip()[:-1] + " "
            continue
        code, comment = split_comment(pending + raw)
        pending = ""
        commands.append(Command(start, block, " ".join(code.split()), comment))
    return commands


def words_of(code: str) -> list[str]:
    """The words bash would pass (quotes removed); ReadmeError for pipes, redirections, lists, substitutions."""
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    special = [t for t in tokens if t and set(t) <= set("();<>|&")]
    if special or "$(" in code or "`" in code:
        raise ReadmeError(
            f"{code!r} uses shell syntax ({' '.join(special) or '$(...)'}) the README test does not run: "
            "write simple commands (one per line) or teach tests/readme_commands.py"
        )
    return shlex.split(code)


def split_assignments(words: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Leading ``NAME=value`` words (and ``export``) -> (assignments, the command's words)."""
    words = list(words)
    if words[:1] == ["export"]:
        words = words[1:]
    assigned: dict[str, str] = {}
    while words and re.fullmatch(rf"{NAME}=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        assigned[name] = value
    return assigned, words


def placeholder_regex(path: str) -> re.Pattern | None:
    """A regex for a path with DATE/TIME (or YYYY-MM-DD/HH-MM-SS, ``...``) in it; None without placeholders."""
    pattern, seen, last = "", set(), 0
    for m in _TOKEN.finditer(path):
        pattern += re.escape(path[last : m.start()])
        if m.group(0) == "...":
            pattern += r"(?:[^/]+(?:/[^/]+)*?)"
        else:
            group = _GROUP[m.group(0)]
            pattern += f"(?P={group})" if group in seen else f"(?P<{group}>{_REGEX[group]})"
            seen.add(group)
        last = m.end()
    return re.compile(pattern + re.escape(path[last:].rstrip("/"))) if last else None


def place_regex(place: str, command: str) -> re.Pattern:
    """A documented place (``outputs/<command>/DATE/TIME``) as a regex for ``command``'s run directory."""
    parts = []
    for part in place.split("/"):
        if part in _GROUP:
            parts.append(_REGEX[_GROUP[part]])
        elif part == "N":
            parts.append(r"\d+")
        elif part == "<command>":
            parts.append(re.escape(command))
        elif re.fullmatch(r"<[^<>]+>", part):
            parts.append(r"[^/]+")
        else:
            parts.append(re.escape(part))
    return re.compile("/".join(parts))


def expand_tilde(word: str, home: Path | str, assignment: bool = False) -> str:
    """``~`` as bash expands it: at a word's start and after ``NAME=`` (a dotted key keeps it: ``a.b=~/x``)."""
    if word.startswith("~/") or word == "~":
        return f"{home}{word[1:]}"
    m = re.match(rf"({NAME})=~(/.*)?$", word)
    return f"{m.group(1)}={home}{m.group(2) or ''}" if m and not assignment else word


def without_text_placeholders(code: str) -> str:
    """The command without its ``<placeholders>`` (which bash would read as redirections)."""
    return re.sub(r"<[A-Za-z][^<>]*>", "", code)


def has_placeholder(text: str) -> bool:
    return bool(_TOKEN.search(text))


def documented_places(readme: str) -> list[str]:
    """The run directories the README names with placeholders (``outputs/<command>/DATE/TIME/``, ...).

    Each is cut after its last DATE/TIME/N part: ``outputs/DATE/TIME/checkpoints/last.ckpt`` names the
    place ``outputs/DATE/TIME``.
    """
    places = []
    for path in re.findall(r"(?<![\w/.])((?:outputs|multirun)/[^\s`'\"),;]*)", readme):
        parts = path.rstrip("/.").split("/")
        ends = [i for i, p in enumerate(parts) if (_TOKEN.fullmatch(p) and p != "...") or p == "N"]
        if ends:
            place = "/".join(parts[: ends[-1] + 1])
            if place not in places:
                places.append(place)
    return places


@dataclass
class Result:
    """What running one command did."""

    status: int | None = None
    output: str = ""
    seconds: float = 0.0
    argv: list[str] = field(default_factory=list)
    touched: set[Path] = field(default_factory=set)  # files made or rewritten, absolute
    error: str | None = None  # the command could not be resolved (unknown path, placeholder, ...)
    skipped: str | None = None

    def tail(self, n: int = 4000) -> str:
        return self.output[-n:]


def snapshot(*roots: Path, skip: frozenset[str] = frozenset()) -> dict[Path, tuple[int, int]]:
    """Every file under ``roots`` (but not in folders named in ``skip``) -> (mtime, size)."""
    files = {}
    for root in roots:
        for dirpath, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            for name in names:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.lstat()
                    files[path] = (st.st_mtime_ns, st.st_size)
    return files


class _Tee(io.TextIOBase):
    """Collects what a command prints (to show when it fails)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_module_in_process(
    module: str, args: Sequence[str], env: Mapping[str, str | None], cwd: Path
) -> tuple[int, str]:
    """``python -m module args`` inside this process: runpy with sys.argv set, Hydra's global state cleared.

    Returns the exit status (SystemExit's code; 1 for an uncaught exception, as Python exits) and the output.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    tee, argv, path, here = _Tee(), sys.argv, list(sys.path), os.getcwd()
    GlobalHydra.instance().clear()
    status = 0
    try:
        sys.argv = [module, *args]
        os.chdir(cwd)
        with (
            _environment(env),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(tee),
            contextlib.redirect_stderr(tee),
        ):
            warnings.filterwarnings("ignore", "'alexnet_lightning.", RuntimeWarning)  # runpy: already imported
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int | None):
                    print(e.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                status = 1
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(here)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # later code must not think it runs inside this run (or its sweep)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
    return status, tee.getvalue()


@dataclass
class Background:
    """A command that runs until stopped (serve): started, later probed over HTTP and stopped."""

    process: subprocess.Popen
    started: float
    url: str
    log: Path
    result: Result

    def probe_and_stop(self, timeout: float = 90.0) -> None:
        deadline, body = time.monotonic() + timeout, None
        while time.monotonic() < deadline and self.process.poll() is None and body is None:
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    body = f"GET {self.url}: {response.status} {response.read(200).decode(errors='replace')}"
            except OSError:
                time.sleep(0.3)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # as Ctrl-C stops it
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.result.output = self.log.read_text(errors="replace") + ("\n" + body if body else "")
        exited = self.process.returncode
        self.result.status = 0 if body and body.split(": ")[1].startswith("200") else (exited or 1)
        if body is None:
            self.result.output += f"\nno answer from {self.url} (exit status {exited})"
        self.result.seconds = time.monotonic() - self.started


@dataclass
class Tables:
    """What the test supplies: how README paths, placeholders and commands map onto this machine."""

    home_paths: Mapping[str, object]  # "~/..." -> how to make it (checked here, made by the test)
    text_placeholders: Mapping[str, str]  # "<same overrides>" -> what it stands for (handled below)
    shrink: object  # (program, words) -> words appended to make the run small
    background: Mapping[str, str]  # module -> the URL path that says it is up (it runs until stopped)


SAME_OVERRIDES = "<same overrides>"


class Session:
    """Runs README commands in order, as a user would in one shell: one working directory, one HOME.

    ``python -m alexnet_lightning.X`` runs inside this process (``run_module_in_process``), except the
    ``background`` modules, which start as processes, are probed over HTTP at ``finish()`` and stopped;
    ``make TARGET`` runs as a process on a copy of the Makefile. Shell variables set by one command
    (``CKPT=...``) are seen by the later ones.
    """

    def __init__(self, root: Path, repo: Path, tables: Tables, python: str = sys.executable) -> None:
        self.root, self.repo, self.tables, self.python = root, repo, tables, python
        self.home, self.cwd = root / "home", root / "work"
        self.home.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.variables: dict[str, str] = {}
        self.made: list[set[Path]] = []  # what each command run so far made, in order
        self.backgrounds: list[Background] = []
        self._second = 0
        import matplotlib

        pythonpath = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
        self.env: dict[str, str | None] = {
            "HOME": str(self.home),
            "XDG_CACHE_HOME": None,  # caches go under the temporary HOME
            "HYDRA_FULL_ERROR": None,
            "PYTHONPATH": pythonpath,  # subprocesses import this checkout's package
            "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or matplotlib.get_cachedir(),  # no font-cache rebuild
        }
        self._make_ready = False

    # ---------------------------------------------------------------- resolving
    def resolve(self, command: Command) -> tuple[dict[str, str], list[str]]:
        """(environment assignments, words) with variables, ``~`` and placeholders resolved; ReadmeError if unknown."""
        code = command.code
        for found in re.findall(r"<[A-Za-z][^<>]*>", code):
            if found not in self.tables.text_placeholders:
                raise ReadmeError(f"unknown placeholder {found}: add it to TEXT_PLACEHOLDERS in tests/test_readme.py")
            code = code.replace(found, f"__PLACEHOLDER_{list(self.tables.text_placeholders).index(found)}__")
        assigned, words = split_assignments(words_of(code))
        assigned = {k: self._word(v, bash_tilde=True) for k, v in assigned.items()}
        words = [self._word(w) for w in words]
        if not words:  # CKPT=...: resolve its placeholders now, as the later commands will use its value
            resolved = dict(zip(assigned, self._placeholders(list(assigned.values()))[0], strict=True))
            return resolved, []
        words, run_dir = self._placeholders(words)
        if SAME_OVERRIDES in self.tables.text_placeholders:
            same = f"__PLACEHOLDER_{list(self.tables.text_placeholders).index(SAME_OVERRIDES)}__"
            if same in words:
                words[words.index(same) : words.index(same) + 1] = self._overrides_of(run_dir, command)
        return assigned, words

    def _word(self, word: str, bash_tilde: bool = False) -> str:
        def variable(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name in self.variables:
                return self.variables[name]
            if name == "HOME":
                return str(self.home)
            raise ReadmeError(f"${name} is not set by an earlier README command (nor known to the test)")

        if not re.fullmatch(r"__PLACEHOLDER_\d+__", word):
            plain = re.sub(rf"\$\{{?{NAME}\}}?", "", _TOKEN.sub("", word.split("=", 1)[-1]))
            for part in re.split(r"[/=,:.\s]", plain):
                if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", part):
                    raise ReadmeError(
                        f"{word!r}: {part} looks like a placeholder the test does not know: "
                        "add it to TEXT_PLACEHOLDERS in tests/test_readme.py or write a real value"
                    )
        word = re.sub(rf"\$\{{({NAME})\}}|\$({NAME})", variable, word)
        for path in re.findall(r"(?:^|=)(~[^\s,]*)", word):
            if path.rstrip("/") not in self.tables.home_paths:
                raise ReadmeError(
                    f"unknown path {path} in {word!r}: add it to HOME_PATHS in tests/test_readme.py "
                    "(with the small folder of the right layout that stands for it)"
                )
        if word.startswith("/") or re.match(r"[^=]*=/", word):
            raise ReadmeError(f"absolute path in {word!r}: the README test maps only ~/... paths; use one")
        return expand_tilde(word, self.home, assignment=bash_tilde)

    def _existing(self) -> list[list[str]]:
        """Paths (files and their folders) that each earlier command made, relative to the working directory."""
        out = []
        for made in self.made:
            paths = set()
            for path in made:
                with contextlib.suppress(ValueError):
                    rel = path.relative_to(self.cwd)
                    paths.add(rel.as_posix())
                    paths.update(p.as_posix() for p in rel.parents if p.as_posix() != ".")
            out.append(sorted(paths))
        return out

    def _placeholders(self, words: list[str]) -> tuple[list[str], Path | None]:
        """DATE/TIME in paths -> the first earlier run that made such a path (all of a command's paths from one run)."""
        spots = [(i, w.split("=", 1)) for i, w in enumerate(words) if has_placeholder(w)]
        if not spots:
            return words, None
        regexes = [placeholder_regex(parts[-1]) for _, parts in spots]
        existing = self._existing()
        everything = sorted({p for made in existing for p in made})
        for made in existing:
            for candidate in made:
                first = regexes[0].fullmatch(candidate)
                if not first:
                    continue
                chosen = [candidate]
                for rx in regexes[1:]:
                    match = next(
                        (p for p in everything if (m := rx.fullmatch(p)) and _agrees(m, first.groupdict())), None
                    )
                    if match is None:
                        break
                    chosen.append(match)
                else:
                    out = list(words)
                    for (i, parts), path in zip(spots, chosen, strict=True):
                        out[i] = f"{parts[0]}={path}" if len(parts) == 2 else path
                    return out, self.cwd / candidate
        wanted = " and ".join(parts[-1] for _, parts in spots)
        raise ReadmeError(f"no earlier README command made {wanted} (in the README test's working directory)")

    def _overrides_of(self, path: Path | None, command: Command) -> list[str]:
        from omegaconf import OmegaConf

        for folder in [path, *path.parents] if path else []:
            if (folder / ".hydra" / "overrides.yaml").is_file():
                return [str(o) for o in OmegaConf.load(folder / ".hydra" / "overrides.yaml")]
        raise ReadmeError(f"{SAME_OVERRIDES} in {command.code!r}: no run directory with .hydra/overrides.yaml named")

    # ---------------------------------------------------------------- running
    def run(self, command: Command) -> Result:
        result = Result()
        try:
            assigned, words = self.resolve(command)
        except ReadmeError as e:
            result.error = str(e)
            self.made.append(set())
            return result
        if not words:
            self.variables.update(assigned)
            result.status, result.output = 0, " ".join(f"{k}={v}" for k, v in assigned.items())
            self.made.append(set())
            return result
        env = {**self.env, **assigned}
        while int(time.time()) == self._second:  # Hydra names run folders by the second: one run per second
            time.sleep(0.02)
        self._second = int(time.time())
        before = snapshot(self.cwd, self.home)
        start = time.monotonic()
        try:
            if words[0] in ("python", "python3") and words[1:2] == ["-m"] and len(words) > 2:
                program, args = words[2], words[3:]
                if not program.startswith("alexnet_lightning."):
                    raise ReadmeError(f"python -m {program}: the README test runs alexnet_lightning's modules only")
                argv = [*args, *self.tables.shrink(program, args)]
                result.argv = ["python", "-m", program, *argv]
                if program in self.tables.background:
                    self._start(program, argv, env, result)
                    return result
                result.status, result.output = run_module_in_process(program, argv, env, self.cwd)
            elif words[0] == "make":
                self._prepare_make()
                argv = [*words[1:], *self.tables.shrink("make", words[1:])]
                result.argv = ["make", *argv]
                done = subprocess.run(
                    result.argv, cwd=self.cwd, env=_merged(env), capture_output=True, text=True, timeout=600
                )
                result.status, result.output = done.returncode, done.stdout + done.stderr
            else:
                raise ReadmeError(
                    f"the README test cannot run {words[0]!r}: mark the line in README.md "
                    f"('# {MARKER} REASON') or teach tests/readme_commands.py to run it"
                )
        except ReadmeError as e:
            result.error = str(e)
        finally:
            result.seconds = time.monotonic() - start
            after = snapshot(self.cwd, self.home)
            result.touched = {p for p, stat in after.items() if before.get(p) != stat}
            self.made.append(result.touched)
        return result

    def _prepare_make(self) -> None:
        """The working directory as a checkout after ``make install``: the Makefile, and .venv as this interpreter."""
        if self._make_ready:
            return
        for name in ("Makefile", "pyproject.toml"):
            (self.cwd / name).write_bytes((self.repo / name).read_bytes())
        earlier = time.time() - 60
        os.utime(self.cwd / "pyproject.toml", (earlier, earlier))  # older than the stamp: make install is done
        bin_dir = self.cwd / ".venv" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for tool in ("python", "tensorboard", "ruff", "nbstripout"):
            target = Path(self.python) if tool == "python" else Path(self.python).parent / tool
            (bin_dir / tool).write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
            (bin_dir / tool).chmod(0o755)
        (self.cwd / ".venv" / ".installed").touch()
        self._make_ready = True

    def _start(self, module: str, argv: list[str], env: dict, result: Result) -> None:
        log = self.root / f"{module}.{len(self.backgrounds)}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [self.python, "-m", module, *argv], cwd=self.cwd, env=_merged(env), stdout=out, stderr=subprocess.STDOUT
            )
        port = next((a.split("=", 1)[1] for a in reversed(argv) if a.startswith("port=")), "8000")
        url = f"http://127.0.0.1:{port}{self.tables.background[module]}"
        self.backgrounds.append(Background(process, time.monotonic(), url, log, result))

    def finish(self) -> None:
        """Probe and stop the commands that run until stopped."""
        for background in self.backgrounds:
            before = snapshot(self.cwd)
            background.probe_and_stop()
            background.result.touched = {p for p, s in snapshot(self.cwd).items() if before.get(p) != s}

    def kill(self) -> None:
        for background in self.backgrounds:
            if background.process.poll() is None:
                background.process.kill()
                background.process.wait()


def _agrees(match: re.Match, bound: Mapping[str, str]) -> bool:
    return all(bound.get(k) in (None, v) for k, v in match.groupdict().items())


def _merged(env: Mapping[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for k, v in env.items():
        if v is None:
            merged.pop(k, None)
    return merged
