"""The README's layout map is true: every module has a room, and every import goes to a room its row allows."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch

from conftest import REPO

PACKAGE = REPO / "alexnet_lightning"


def rooms() -> dict[str, tuple[list[str], set[str]]]:
    """``room -> (module patterns, rooms it may import)`` from the README's layout table."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("## Layout") :].split("\n\n")[2]
    result = {}
    for line in table.splitlines()[2:]:
        room, modules, _, allowed = (cell.strip() for cell in line.strip("|").split("|"))
        patterns = re.findall(r"`([^`]+)`", modules)
        result[room] = (patterns, {r.strip() for r in allowed.split(",")})
    return result


def module_names() -> list[str]:
    return sorted(
        p.relative_to(PACKAGE).with_suffix("").as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and "conf" not in p.parts
    )


def room_of(module: str, table: dict[str, tuple[list[str], set[str]]]) -> str:
    found = [room for room, (patterns, _) in table.items() if any(fnmatch(module, p) for p in patterns)]
    assert len(found) == 1, f"alexnet_lightning/{module}.py is in {found or 'no'} room of README.md's layout map"
    return found[0]


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports (``from alexnet_lightning.x import y`` -> ``x`` or ``x/y``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alexnet_lightning"):
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            path = name.removeprefix("alexnet_lightning").strip(".").replace(".", "/")
            if (PACKAGE / f"{path}.py").is_file():
                found.add(path)
    return found


def test_every_module_has_one_room_and_imports_only_what_its_room_may() -> None:
    table = rooms()
    assert {"foundation", "models", "data", "model", "inference", "commands"} <= set(table)
    wrong = []
    for module in module_names():
        room = room_of(module, table)
        allowed = table[room][1]
        for target in imports(module):
            target_room = room_of(target, table)
            if target_room != room and target_room not in allowed and "every room" not in allowed:
                wrong.append(f"{module} ({room}) imports {target} ({target_room})")
    assert not wrong, "imports the README's layout map does not allow:\n" + "\n".join(wrong)


def test_the_package_has_no_import_cycles() -> None:
    graph = {m: imports(m) - {m} for m in module_names()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
