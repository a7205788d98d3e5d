from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from fixtures import make_catsdogs_folder

from alexnet_lightning import prepare
from alexnet_lightning.errors import UserError


def _tree(dst: Path) -> dict[str, str]:
    return {p.name: p.parent.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mode", ["copy", "symlink", "move"])
def test_prepare_organizes_and_is_idempotent(tmp_path: Path, mode: str) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=10)
    (src / "readme.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in src.glob("*.jpg")}
    dst = tmp_path / "dst"
    actions = prepare.prepare_catsdogs(src, dst, mode, val_fraction=0.2, test_fraction=0.1)
    assert sum(actions.values()) == 20
    tree = _tree(dst)
    assert sorted(tree) == sorted(before)
    assert tree["cat.0.jpg"].endswith("/cat") and tree["dog.0.jpg"].endswith("/dog")
    assert sorted(tree.values()).count("val/cat") == 2 and sorted(tree.values()).count("test/dog") == 1
    for name, content in before.items():
        assert (dst / tree[name] / name).read_bytes() == content
    assert (dst / tree["cat.3.jpg"] / "cat.3.jpg").is_symlink() == (mode == "symlink")
    assert (src / "cat.3.jpg").exists() == (mode != "move") and (src / "readme.txt").exists()
    again = prepare.prepare_catsdogs(src, dst, mode, val_fraction=0.2, test_fraction=0.1)
    assert again == {"already there": 20} and _tree(dst) == tree


def test_interrupted_move_is_finished_by_a_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=10)
    names = sorted(p.name for p in src.iterdir())
    dst = tmp_path / "dst"
    real_place, calls = prepare._place, []

    def crash_after_seven(source: Path, target: Path, mode: str) -> None:
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append(source)
        real_place(source, target, mode)

    monkeypatch.setattr(prepare, "_place", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_catsdogs(src, dst, "move", val_fraction=0.2)
    assert len(list(src.iterdir())) == 13 and len(_tree(dst)) == 7
    monkeypatch.undo()
    actions = prepare.prepare_catsdogs(src, dst, "move", val_fraction=0.2)
    assert actions["already there"] == 7 and sum(actions.values()) == 20
    assert sorted(_tree(dst)) == names and not list(src.iterdir())


def test_a_different_file_is_never_overwritten(tmp_path: Path) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=4)
    dst = tmp_path / "dst"
    prepare.prepare_catsdogs(src, dst, "copy")
    (dst / "train" / "cat" / "cat.1.jpg").write_bytes(b"someone else's file")
    with pytest.raises(UserError, match=r"cat\.1\.jpg exists and differs from .*not overwriting"):
        prepare.prepare_catsdogs(src, dst, "move")
    assert (dst / "train" / "cat" / "cat.1.jpg").read_bytes() == b"someone else's file"
    assert len(list(src.iterdir())) == 8


def test_changed_fractions_are_refused_on_rerun(tmp_path: Path) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=10)
    prepare.prepare_catsdogs(src, tmp_path / "dst", "copy", val_fraction=0.2)
    with pytest.raises(UserError, match="placed by a run with other fractions or seed"):
        prepare.prepare_catsdogs(src, tmp_path / "dst", "copy", val_fraction=0.3)


def test_cli_dry_run_changes_nothing_and_errors_are_one_line(tmp_path: Path) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=3)
    result = run_cli(
        "alexnet_lightning.prepare", "catsdogs", str(src), str(tmp_path / "dst"), "--mode", "move", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "would move to train: 6" in result.stdout and not (tmp_path / "dst").exists()
    assert len(list(src.iterdir())) == 6
    result = run_cli("alexnet_lightning.prepare", "catsdogs", str(tmp_path / "nope"), str(tmp_path / "dst"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: SRC {tmp_path / 'nope'} is not a folder"


def test_names_that_occur_twice_are_refused(tmp_path: Path) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=2)
    (src / "more").mkdir()
    (src / "more" / "cat.0.jpg").write_bytes((src / "dog.1.jpg").read_bytes())
    with pytest.raises(UserError, match=r"1 names occur twice .*cat\.0\.jpg"):
        prepare.prepare_catsdogs(src, tmp_path / "dst", "move")
    assert len(list(src.rglob("*.jpg"))) == 5


@pytest.mark.parametrize(
    ("fractions", "layout"),
    [((), "train"), (("--val", "0.2"), "{train,val}"), (("--val", "0.2", "--test", "0.1"), "{train,val,test}")],
)
def test_the_last_line_names_only_the_splits_made(tmp_path: Path, capsys, fractions: tuple, layout: str) -> None:
    src = make_catsdogs_folder(tmp_path / "src", n_per_class=10)
    prepare.main(["catsdogs", str(src), str(tmp_path / "dst"), *fractions])
    assert capsys.readouterr().out.splitlines()[-1] == f"done: 20 files in {tmp_path / 'dst'}/{layout}/<class>/"
