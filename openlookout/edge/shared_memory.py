"""POSIX shared memory named in a DetectAnomalies request: the bitmap read from it, the mask written to it.

A name is one POSIX shared memory name, as shm_open takes it: `/name` or `name`, with no other `/`,
so it can only mean an entry of /dev/shm. That entry is opened with O_NOFOLLOW (never through a
symbolic link) and O_NONBLOCK (a FIFO answers at once instead of holding a worker), must be a
regular file, and must already hold offset + size bytes before a byte is read or written: a write
never grows a file. Each refusal is INVALID_ARGUMENT with a message naming the segment.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from openlookout.edge.errors import AgentError

SHM_ROOT = Path("/dev/shm")  # where Linux keeps shm_open segments
NAME_MAX = 255  # bytes in one file name (Linux's NAME_MAX), as shm_open allows
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _invalid(message: str) -> AgentError:
    return AgentError(grpc.StatusCode.INVALID_ARGUMENT, message)


def segment_path(name: str) -> Path:
    """The /dev/shm entry of a POSIX shared memory name; INVALID_ARGUMENT for anything else."""
    bare = name[1:] if name.startswith("/") else name
    if not bare or bare in (".", "..") or "/" in bare or "\0" in bare or len(bare.encode()) > NAME_MAX:
        raise _invalid(
            f"The shared memory name {name!r} is not a POSIX shared memory name: one name of 1 to "
            f"{NAME_MAX} bytes, optionally after one leading '/', with no other '/'."
        )
    return SHM_ROOT / bare


def _open_error(name: str, error: OSError) -> AgentError:
    if isinstance(error, FileNotFoundError):
        return _invalid(f"The shared memory {name} does not exist.")
    if isinstance(error, PermissionError):
        return _invalid(f"The shared memory {name} cannot be opened: permission denied.")
    # ELOOP (a symbolic link), EISDIR, ENXIO (a FIFO without reader) and the like.
    return _invalid(f"The shared memory {name} is not a shared memory segment.")


@contextlib.contextmanager
def opened_segment(handle: Any, needed: int, writable: bool) -> Iterator[int]:
    """A descriptor of the handle's segment, checked to be a regular file holding offset + needed bytes."""
    name, offset = handle.name, handle.offset
    path = segment_path(name)
    try:
        descriptor = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | _OPEN_FLAGS)
    except OSError as error:
        raise _open_error(name, error) from None
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise _invalid(f"The shared memory {name} is not a shared memory segment.")
        if found.st_size < offset + needed:
            raise _invalid(
                f"The shared memory {name} has {found.st_size} bytes; offset {offset} plus {needed} bytes "
                "does not fit in it."
            )
        yield descriptor
    finally:
        os.close(descriptor)


def read_bitmap(handle: Any, expected: int) -> bytes:
    """The `expected` bytes of an RGB888 bitmap from the handle's segment."""
    if handle.size != expected:
        raise _invalid(
            f"The shared memory size is {handle.size} bytes; a {expected}-byte RGB888 bitmap was expected."
        )
    with opened_segment(handle, expected, writable=False) as descriptor:
        data = os.pread(descriptor, expected, handle.offset)
    if len(data) != expected:  # the segment shrank between the check and the read
        raise _invalid(f"The shared memory {handle.name} holds fewer than {expected} bytes after its offset.")
    return data


@dataclass(frozen=True)
class MaskTarget:
    """A checked, open mask segment: `capacity` bytes from `offset` are there to be written."""

    descriptor: int
    name: str
    offset: int
    capacity: int

    def write(self, rgb: bytes) -> None:
        if len(rgb) > self.capacity or os.pwrite(self.descriptor, rgb, self.offset) != len(rgb):
            raise _invalid(
                f"The mask ({len(rgb)} bytes) could not be written whole to the shared memory {self.name}."
            )


@contextlib.contextmanager
def mask_target(handle: Any, needed: int) -> Iterator[MaskTarget]:
    """The mask's segment, checked before the model runs, so that a bad handle costs no inference."""
    if handle.size < needed:
        raise _invalid(f"The mask's shared memory has {handle.size} bytes; the mask needs {needed}.")
    with opened_segment(handle, needed, writable=True) as descriptor:
        yield MaskTarget(descriptor, handle.name, handle.offset, needed)
