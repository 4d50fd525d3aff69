"""Join a name that came from elsewhere (an S3 key, a listing) under a root folder, refusing escapes.

One rule for every command that writes files named by data it does not control: the name must be
a relative path of plain segments separated by `/`. Refused: an empty name or segment (`a//b`,
a trailing `/`), `.` and `..`, a leading `/`, a backslash or a drive (`C:`) that Windows would read
as a separator or a root, and a NUL byte. The joined path must also stay under the root once
symbolic links already inside the root are resolved. werkzeug's `safe_join` is close, but it
accepts backslashes and empty segments on POSIX and is not a dependency of the client commands.
"""

from __future__ import annotations

from pathlib import Path


class UnsafePath(ValueError):
    """A name that would not land inside the root; the message says why."""


def relative_problem(name: str) -> str | None:
    """Why `name` is not a plain relative path of `/`-separated segments, in words, or None."""
    if not name:
        return "it is empty"
    if "\\" in name or "\0" in name:
        return "it holds a backslash or a NUL byte"
    if name.startswith("/"):
        return "it is absolute"
    segments = name.split("/")
    if any(segment == "" for segment in segments):
        return "it has an empty segment"
    if any(segment in (".", "..") for segment in segments):
        return "it has a '.' or '..' segment"
    if ":" in segments[0]:
        return "it starts with a drive or a colon"
    return None


def join_under(root: Path, name: str) -> Path:
    """`root / name` when it stays inside `root` (symbolic links within root followed); UnsafePath else."""
    problem = relative_problem(name)
    if problem is None:
        target = root.joinpath(*name.split("/"))
        if target.resolve().is_relative_to(root.resolve()):
            return target
        problem = "it leads outside through a symbolic link"
    raise UnsafePath(f"{name!r} is not written under {root}: {problem}")
