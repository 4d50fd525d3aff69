"""How every `openlookout` command talks to its user: tables, JSON and one-line errors.

Errors go to stderr as one line, `openlookout: <what went wrong>`, never as a traceback. The exit
code says whose fault it was: 1 for the service, a resource or a file it could not read or write,
2 for the command line itself (argparse's own convention, kept for the checks made here).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, NoReturn

SERVICE_ERROR = 1
USAGE_ERROR = 2


class CommandError(Exception):
    """A failure the command explains in one line."""

    def __init__(self, message: str, exit_code: int = SERVICE_ERROR) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line too (exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def report_error(message: str) -> None:
    print(f"openlookout: {message}", file=sys.stderr)


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Runs one command; whatever stops it becomes one line on stderr and an exit code."""
    from botocore.exceptions import BotoCoreError, ClientError

    from openlookout.client import WaitError

    try:
        return command(args)
    except CommandError as error:
        report_error(error.message)
        return error.exit_code
    except ClientError as error:
        info = error.response.get("Error", {})
        report_error(f"{info.get('Code')}: {info.get('Message')}")
    except (BotoCoreError, WaitError) as error:
        report_error(str(error))
    except OSError as error:  # a file the command had to read or write
        report_error(f"{error.strerror or error}: {error.filename}" if error.filename else str(error))
    except KeyboardInterrupt:
        report_error("interrupted")
        return 130
    return SERVICE_ERROR


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not shown as JSON")


def print_json(data: Any) -> None:
    """The service's answer as JSON: timestamps as ISO 8601, nothing binary (callers leave it out)."""
    print(json.dumps(data, indent=2, default=_plain))


@dataclass(frozen=True)
class Column:
    title: str
    width: int = 0  # 0: the last column, unpadded
    right: bool = False

    def cell(self, value: object) -> str:
        text = "-" if value is None or value == "" else str(value)
        if not self.width:
            return text
        return text.rjust(self.width) if self.right else text.ljust(self.width)


class Table:
    """Rows printed as they come, under one header. The header goes out with the first row (or
    when an empty table closes), so an error before any row prints no header above it."""

    def __init__(self, *columns: Column) -> None:
        self.columns, self.started = columns, False

    def row(self, *values: object) -> None:
        self._header()
        print(self._line(values))

    def _header(self) -> None:
        if not self.started:
            self.started = True
            print(self._line([c.title for c in self.columns]))

    def _line(self, values: Sequence[object]) -> str:
        cells = [(" " if c.width else "  ") + c.cell(v) for c, v in zip(self.columns, values, strict=True)]
        return "".join(cells)[1:].rstrip()  # two spaces before the free text of an unpadded column

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self._header()
