"""Progress while a command waits: the model's stage from its StatusMessage, and uploads counted.

On a terminal each is one line redrawn in place; piped, each change is a line of its own.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

STAGE = re.compile(r"[A-Z][\w ]*: (\d+) of (\d+)")


def progress_bar(message: str, width: int = 20) -> str:
    """[#####-----] 50% for a stage message "Stage: i of n ..."; blanks for any other message."""
    found = STAGE.match(message)
    if not found or int(found.group(2)) == 0:
        return " " * (width + 7)
    share = min(1.0, int(found.group(1)) / int(found.group(2)))
    filled = round(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {share:>4.0%}"


class StatusLine:
    """One line of progress: redrawn in place on a terminal, a new line per change otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.drawn = False

    def show(self, line: str) -> None:
        if self.tty:
            print("\r" + line.ljust(110), end="", file=self.stream, flush=True)
        else:
            print(line, file=self.stream, flush=True)
        self.drawn = True

    def done(self) -> None:
        """Ends a line redrawn in place, so what follows starts on a line of its own."""
        if self.tty and self.drawn:
            print(file=self.stream)
        self.drawn = False


def status_printer(line: StatusLine) -> Callable[[dict[str, Any]], None]:
    """A waiter's `on_change`: the status, a bar for "<stage>: i of n" messages, the time so far."""
    started = time.monotonic()

    def show(description: dict[str, Any]) -> None:
        message = description.get("StatusMessage") or ""
        elapsed = time.monotonic() - started
        line.show(f"{description['Status']:<18} {progress_bar(message)} {message} ({elapsed:.0f} s)")

    return show


class Counter:
    """Counts finished items from worker threads and shows "<label>: i of n" (piped: every tenth)."""

    def __init__(self, label: str, total: int, line: StatusLine) -> None:
        self.label, self.total, self.line = label, total, line
        self.count, self.lock = 0, threading.Lock()
        self.step = 1 if line.tty else max(1, total // 10)

    def add(self) -> None:
        with self.lock:
            self.count += 1
            if self.count % self.step == 0 or self.count == self.total:
                self.line.show(f"{self.label}: {self.count} of {self.total}")
