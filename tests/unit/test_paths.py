"""join_under: a name from a listing lands inside the root folder, or is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from openlookout.core.paths import UnsafePath, join_under


@pytest.mark.parametrize(
    "name",
    ["index.html", "overlays/good_000.png", "a/b/c.txt", "..hidden", "x..y", "dir.../f", "a b/ü.png"],
)
def test_plain_relative_names_land_inside(tmp_path: Path, name: str) -> None:
    target = join_under(tmp_path, name)
    assert target == tmp_path.joinpath(*name.split("/"))
    assert target.resolve().is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("../escape.txt", "'..'"),
        ("a/../../escape.txt", "'..'"),
        ("a/./b", "'.'"),
        ("..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("..\\escape.txt", "backslash"),
        ("a\\b", "backslash"),
        ("C:/Windows/x", "drive"),
        ("c:x", "drive"),
        ("a\0b", "NUL"),
    ],
)
def test_escaping_names_are_refused_with_the_reason(tmp_path: Path, name: str, reason: str) -> None:
    with pytest.raises(UnsafePath) as excinfo:
        join_under(tmp_path, name)
    assert reason in str(excinfo.value) and repr(name) in str(excinfo.value)


def test_a_symbolic_link_inside_the_root_does_not_lead_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "report", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "linked").symlink_to(outside)
    (root / "inner").mkdir()
    (root / "to-inner").symlink_to(root / "inner")
    with pytest.raises(UnsafePath, match="symbolic link"):
        join_under(root, "linked/victim.txt")
    assert join_under(root, "to-inner/file.txt") == root / "to-inner" / "file.txt"
