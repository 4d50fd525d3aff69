"""Every code block in README.md and docs/*.md runs as written, in order, against `openlookout serve`,
and prints what the document says it prints.

The convention, for whoever adds a block:

* ```bash (or sh) and ```python blocks run; any other info string (yaml, json, text, none) is shown
  only. README.md runs in a fresh clone of this working tree (what `git clone` would give, with
  `.venv` linked in), as a new user follows it; each docs/*.md page runs in a fresh empty folder
  (with `.venv` linked into it, so `source .venv/bin/activate` works).
* bash blocks share one shell state: what a block exports (and its `cd`) holds for the next ones.
* Each python block runs on its own, as `python -c BLOCK` in the shell's folder and environment: it
  makes its own clients and imports, as a script pasted from it would.
* The user has no AWS credentials, region or endpoint until a block sets them; the documents say
  `http://127.0.0.1:3000` (what `make serve` listens on) and the test serves on a free port instead.
* Printed output: the full-line comments that end a block (`# ...` after the last command) are what
  it prints, in order; other lines may come between them. `...` in such a line stands for any text.
  Numbers are compared exactly unless the line right above the block's fence allows a margin for
  decimal numbers (integers stay exact):
      <!-- doc-test: tolerance 0.2 -->
* To skip a block, put this line right above its opening fence, with the reason:
      <!-- doc-test: skip needs an AWS account -->
  Skip only what cannot run here (AWS, Docker, `make test` itself, a long-running server).
* A block fails the test when it exits non-zero, raises or does not print what it says; the output
  is shown in the failure. After README.md's blocks, the clone must look untouched to git (every
  file they wrote is ignored), and `ruff check .` and the unit tests must pass there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.conftest import ROOT, LocalServer

README = ROOT / "README.md"
DOCUMENTS = sorted((ROOT / "docs").glob("*.md"))
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
MARK = re.compile(r"<!--\s*doc-test:\s*(?P<kind>skip|tolerance)\s+(?P<value>.+?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w+-]*)\s*$")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
DOCUMENTED_ENDPOINT = "127.0.0.1:3000"
BLOCK_TIMEOUT_S = 600
UNIT_TESTS_TIMEOUT_S = 900


@dataclass
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str  # "bash", "python" or the info string of a shown-only block
    code: str
    skip_reason: str | None = None
    tolerance: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def printed(self) -> list[str]:
        """The block's closing comment lines: what it says it prints."""
        found: list[str] = []
        for line in reversed(self.code.rstrip().splitlines()):
            if not (line == "#" or line.startswith("# ")):
                break
            found.insert(0, line[2:].strip())
        return found


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the mark (skip or tolerance) of the line above each."""
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
        info = opening.group("info").lower()
        block = Block(document, start + 1, RUNNABLE.get(info, info), body)
        mark = MARK.search(lines[start - 1]) if start else None
        if mark and mark.group("kind") == "skip":
            block.skip_reason = mark.group("value")
        elif mark:
            block.tolerance = float(mark.group("value"))
        found.append(block)
        index += 1
    return found


def line_matches(expected: str, actual: str, tolerance: float) -> bool:
    """`expected` (a documented output line: `...` is any text) against one printed line."""
    pattern, numbers, position = "", [], 0
    tokens = re.compile(r"\.\.\.|-?\d+(?:\.\d+)?|\s+")
    for token in tokens.finditer(expected):
        pattern += re.escape(expected[position : token.start()])
        text = token.group()
        if text == "...":
            pattern += ".*?"
        elif text.isspace():
            pattern += r"\s+"
        else:
            pattern += r"(-?\d+(?:\.\d+)?)"
            numbers.append(text)
        position = token.end()
    pattern += re.escape(expected[position:])
    found = re.fullmatch(pattern, actual.strip())
    if found is None:
        return False
    for want, got in zip(numbers, found.groups(), strict=True):
        if "." in want and tolerance:
            if abs(float(want) - float(got)) > tolerance + 1e-9:
                return False
        elif want != got:
            return False
    return True


def unprinted(expected: list[str], output: str, tolerance: float = 0.0) -> list[str]:
    """The documented lines the output lacks: each must match a printed line after the previous one."""
    actual, position = output.splitlines(), 0
    for index, want in enumerate(expected):
        if want == "...":
            continue
        hit = next(
            (i for i in range(position, len(actual)) if line_matches(want, actual[i], tolerance)), None
        )
        if hit is None:
            return expected[index:]
        position = hit + 1
    return []


def test_the_parser_sees_fences_marks_indented_blocks_and_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- doc-test: skip needs AWS -->\n```bash\necho hi\n```\n\n"
        "1. item\n   ```python\n   x = 1\n   print(x)  # not output\n   # 1\n   ```\n```\nplain\n```\n"
        "<!-- doc-test: tolerance 0.05 -->\n```python\nprint(0.5)\n# 0.52\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.code, b.skip_reason, b.tolerance) for b in found] == [
        ("bash", "echo hi", "needs AWS", 0.0),
        ("python", "x = 1\nprint(x)  # not output\n# 1", None, 0.0),
        ("", "plain", None, 0.0),
        ("python", "print(0.5)\n# 0.52", None, 0.05),
    ]
    assert [b.printed for b in found] == [[], ["1"], [], ["0.52"]]


def test_printed_lines_match_in_order_with_wildcards_and_tolerance() -> None:
    output = "model 1: TRAINING\nTRAINING  [####] 20% (3 s)\nmodel 1: TRAINED (F1Score 0.857, Recall 0.750)\n"
    assert (
        unprinted(["model 1: TRAINING", "...", "model 1: TRAINED (F1Score 0.857, Recall 0.750)"], output)
        == []
    )
    assert unprinted(["TRAINING [####] ...% (... s)"], output) == []
    assert unprinted(["model 1: TRAINED (F1Score 1.000, Recall 0.750)"], output) == [
        "model 1: TRAINED (F1Score 1.000, Recall 0.750)"
    ]
    assert unprinted(["model 1: TRAINED (F1Score 1.000, Recall 0.800)"], output, tolerance=0.15) == []
    assert unprinted(["model 2: TRAINED ..."], output, tolerance=0.15) != []  # integers stay exact
    assert unprinted(["model 1: TRAINED ...", "model 1: TRAINING"], output) != []  # order counts
    assert not line_matches("True ['background', 'stain']", "True ['background', 'dent']", 0.0)


class Reader:
    """A user following one document in `workdir`: a shell whose state carries over between blocks."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        scratch = workdir.parent
        self.state = scratch / "shell-state.sh"
        self.env_file = scratch / "shell-env"
        self.cwd_file = scratch / "shell-cwd"
        self.cwd_file.write_text(str(workdir))
        if not (workdir / ".venv").exists():
            (workdir / ".venv").symlink_to(ROOT / ".venv")
        # A new user's shell: no AWS settings, and no ~/.aws files that could stand in for them.
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENLOOKOUT_", "VIRTUAL_ENV"))
        }
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(scratch / "no-aws-files")
        self.env = env
        self.state.write_text(f"cd {workdir}\n")

    def code(self, block: Block) -> str:
        return block.code.replace(DOCUMENTED_ENDPOINT, f"127.0.0.1:{self.port}")

    def run(self, block: Block) -> str:
        output = self.run_bash(block) if block.language == "bash" else self.run_python(block)
        missing = unprinted(block.printed, output, block.tolerance)
        assert not missing, f"{block.where}: the block did not print\n  {missing[0]}\nIt printed:\n{output}"
        return output

    def run_bash(self, block: Block) -> str:
        script = (
            f"set -eo pipefail\nsource {self.state}\n{self.code(block)}\n"
            f'{{ export -p; echo "cd $(printf %q "$PWD")"; }} > {self.state}\n'
            f"env -0 > {self.env_file}\npwd > {self.cwd_file}\n"
        )
        done = subprocess.run(
            ["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}: bash exited {done.returncode}:\n{output}"
        self.env = dict(item.split("=", 1) for item in self.env_file.read_text().split("\0") if "=" in item)
        return output

    def run_python(self, block: Block) -> str:
        """The block alone, in its own interpreter (the project's), where the shell is."""
        done = subprocess.run(
            [sys.executable, "-c", self.code(block)],
            env=self.env,
            cwd=self.cwd_file.read_text().strip(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}: python exited {done.returncode}:\n{output}"
        return output


def read_through(reader: Reader, document: Path) -> list[str]:
    """Runs the document's blocks in order; returns what ran and what was skipped, for the log."""
    ran, skipped = [], []
    for block in blocks(document):
        if block.language not in ("bash", "python"):
            continue
        if block.skip_reason:
            skipped.append(f"{block.where}: {block.skip_reason}")
            continue
        output = reader.run(block)
        ran.append(f"{block.where}\n{textwrap.indent(output.rstrip(), '    ')}")
    print("\n".join(["ran:", *ran, "skipped:", *skipped]))
    return ran


def fresh_clone(destination: Path) -> Path:
    """This working tree as `git clone` gives it to a new user: the files git tracks or would track
    (uncommitted edits included, so the test checks what is about to be committed), nothing that
    .gitignore leaves out (.venv, node_modules, build output), in a repository of its own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if source.is_file():  # a tracked file deleted in the working tree is gone from the clone too
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    git = ["git", "-c", "user.name=doc-test", "-c", "user.email=doc-test@localhost", "-C", str(destination)]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    # What `make install` makes; linked in, and excluded like the real folder is ignored.
    (destination / ".venv").symlink_to(ROOT / ".venv")
    (destination / ".git" / "info" / "exclude").write_text("/.venv\n")
    return destination


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_block_runs_in_order(document: Path, local_service: LocalServer, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    read_through(
        Reader(workdir, local_service.port), document
    )  # a page whose blocks are all marked skip runs none


def test_readme_in_a_fresh_clone_leaves_it_clean_for_ruff_and_the_unit_tests(
    local_service: LocalServer, tmp_path: Path
) -> None:
    clone = fresh_clone(tmp_path / "clone")
    assert read_through(Reader(clone, local_service.port), README)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True)
    assert status.stdout == "", f"files the README made that .gitignore does not cover:\n{status.stdout}"
    lint = subprocess.run(
        [str(ROOT / ".venv/bin/ruff"), "check", "."], cwd=clone, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    unit = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-x", "-p", "no:cacheprovider"],
        cwd=clone, capture_output=True, text=True, timeout=UNIT_TESTS_TIMEOUT_S,
    )  # fmt: skip
    assert unit.returncode == 0, unit.stdout[-4000:] + unit.stderr[-2000:]
