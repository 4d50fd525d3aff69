"""Every code block in README.md and docs/*.md runs as written, in order, against `openlookout serve`.

The convention, for whoever adds a block:

* ```bash (or sh) and ```python blocks run; any other info string (yaml, json, text, none) is shown
  only. Each document runs on its own, top to bottom, in a fresh empty folder (with `.venv` linked
  into it, so `source .venv/bin/activate` works), as a new user who follows it would.
* bash blocks share one shell state: what a block exports (and its `cd`) holds for the next ones.
  python blocks share one namespace per document and see the environment the bash blocks set.
* The user has no AWS credentials, region or endpoint until a block sets them; the documents say
  `http://127.0.0.1:3000` (what `make serve` listens on) and the test serves on a free port instead.
* To skip a block, put this line right above its opening fence, with the reason:
      <!-- doc-test: skip needs an AWS account -->
  Skip only what cannot run here (AWS, Docker, `make test` itself, a long-running server).
* A block fails the test when it exits non-zero or raises; the output is shown in the failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.contract.conftest import ROOT, LocalServer, Service

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
SKIP_MARK = re.compile(r"<!--\s*doc-test:\s*skip\s+(?P<reason>.+?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w+-]*)\s*$")
DOCUMENTED_ENDPOINT = "127.0.0.1:3000"
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str  # "bash", "python" or the info string of a shown-only block
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the skip mark of the line above each."""
    lines = document.read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start, indent = index, len(opening.group("indent"))
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            index += 1
        body = "\n".join(line[indent:] for line in lines[start + 1 : index])
        mark = SKIP_MARK.search(lines[start - 1]) if start else None
        info = opening.group("info").lower()
        found.append(
            Block(document, start + 1, RUNNABLE.get(info, info), body, mark.group("reason") if mark else None)
        )
        index += 1
    return found


def test_the_parser_sees_fences_marks_and_indented_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- doc-test: skip needs AWS -->\n```bash\necho hi\n```\n\n"
        "1. item\n   ```python\n   x = 1\n   ```\n```\nplain\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.code, b.skip_reason) for b in found] == [
        ("bash", "echo hi", "needs AWS"),
        ("python", "x = 1", None),
        ("", "plain", None),
    ]


class Reader:
    """A user following one document: a shell whose state carries over, and a Python namespace."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.state = workdir.parent / "shell-state.sh"
        self.env_file = workdir.parent / "shell-env"
        self.cwd_file = workdir.parent / "shell-cwd"
        self.cwd_file.write_text(str(workdir))
        (workdir / ".venv").symlink_to(ROOT / ".venv")
        # A new user's shell: no AWS settings, and no ~/.aws files that could stand in for them.
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENLOOKOUT_", "VIRTUAL_ENV"))
        }
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(workdir.parent / "no-aws-files")
        self.env = env
        self.state.write_text(f"cd {workdir}\n")
        self.namespace: dict[str, Any] = {"__name__": "__main__"}

    def code(self, block: Block) -> str:
        return block.code.replace(DOCUMENTED_ENDPOINT, f"127.0.0.1:{self.port}")

    def run_bash(self, block: Block) -> str:
        script = (
            f"set -eo pipefail\nsource {self.state}\n{self.code(block)}\n"
            f'{{ export -p; echo "cd $(printf %q "$PWD")"; }} > {self.state}\n'
            f"env -0 > {self.env_file}\npwd > {self.cwd_file}\n"
        )
        done = subprocess.run(
            ["bash", "-c", script],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}: bash exited {done.returncode}:\n{output}"
        self.env = dict(item.split("=", 1) for item in self.env_file.read_text().split("\0") if "=" in item)
        return output

    def run_python(self, block: Block) -> str:
        out = io.StringIO()
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        os.environ.clear()
        os.environ.update(self.env)
        boto3.DEFAULT_SESSION = None  # the default session reads the environment once
        try:
            os.chdir(self.cwd_file.read_text().strip())
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compile(self.code(block), block.where, "exec"), self.namespace)
        except BaseException as error:
            raise AssertionError(
                f"{block.where}: {type(error).__name__}: {error}\n{out.getvalue()}"
            ) from error
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
            boto3.DEFAULT_SESSION = None
        return out.getvalue()


@pytest.fixture
def reader(service: Service, tmp_path: Path) -> Iterator[Reader]:
    if not isinstance(service, LocalServer):
        pytest.skip("the documents' blocks run against the local service (OPENLOOKOUT_ENDPOINT is set)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    yield Reader(workdir, service.port)


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_block_runs_in_order(document: Path, reader: Reader) -> None:
    ran, skipped = [], []
    for block in blocks(document):
        if block.language not in ("bash", "python"):
            continue
        if block.skip_reason:
            skipped.append(f"{block.where}: {block.skip_reason}")
            continue
        output = reader.run_bash(block) if block.language == "bash" else reader.run_python(block)
        ran.append(f"{block.where}\n{textwrap.indent(output.rstrip(), '    ')}")
    print("\n".join(["ran:", *ran, "skipped:", *skipped]))
    if not ran:
        pytest.skip(f"no runnable block in {document.name} ({len(skipped)} marked skip)")
