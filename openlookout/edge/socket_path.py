"""The edge agent's Unix socket: where it is, who may connect, and what may be removed before a bind.

Importable without grpc (the CLI builds its parser at every start). gRPC's own bind removes any
socket file at the path, a live one included, so the agent checks the path first: a file that is
not a socket (a regular file, a symbolic link, a folder) is never removed, a socket that another
process still answers on is never taken over, and only a stale socket (nobody listening) goes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator

DEFAULT_SOCKET = "/tmp/aws.iot.lookoutvision.EdgeAgent.sock"  # where L4V's clients look for the agent
DEFAULT_SOCKET_MODE = 0o600  # only the agent's own user may connect, unless told otherwise
LIVENESS_TIMEOUT_S = 1.0


class SocketPathError(Exception):
    """The socket path cannot be used; the message names the path and why."""


def socket_mode(text: str) -> int:
    """An octal permission mode for the socket (600, 0o660, 0660), as argparse's `type`."""
    try:
        mode = int(text.removeprefix("0o"), 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an octal mode such as 600 or 660, got {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"a socket mode is 000 to 777, got {text!r}")
    return mode


def _answers(path: str) -> bool:
    """Whether a process accepts connections on the socket at `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(LIVENESS_TIMEOUT_S)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        if isinstance(error, TimeoutError) or error.errno in (errno.EAGAIN, errno.EACCES, errno.EPERM):
            return True  # a full backlog or another user's socket: not ours to remove
        raise
    finally:
        probe.close()
    return True


def claim(path: str) -> None:
    """Makes `path` free for a bind: removes a stale socket there; SocketPathError for anything else."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket; the edge agent does not replace it.")
    if _answers(path):
        raise SocketPathError(f"{path} is a live socket: another process (an edge agent?) answers on it.")
    os.unlink(path)


@contextlib.contextmanager
def created_with_mode(mode: int) -> Iterator[None]:
    """A umask under which a socket bound inside the block is created with at most `mode`: no moment
    in which it is open to more users than asked (the caller chmods it to `mode` after the bind)."""
    previous = os.umask(0o777 & ~mode)
    try:
        yield
    finally:
        os.umask(previous)


def identity(path: str) -> tuple[int, int]:
    found = os.lstat(path)
    return found.st_dev, found.st_ino


def release(path: str, bound: tuple[int, int]) -> None:
    """Removes the socket at `path` if it is still the one this agent bound."""
    with contextlib.suppress(FileNotFoundError):
        if identity(path) == bound:
            os.unlink(path)
