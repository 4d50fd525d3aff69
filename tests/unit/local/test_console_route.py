"""openlookout.local.console: the built console's files at /console/, and nothing outside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openlookout.local.console import is_console_request, serve_console


class Response:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def __call__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, dict(headers)


def get(root: Path, path: str, method: str = "GET") -> tuple[Response, bytes]:
    response = Response()
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    body = b"".join(serve_console(environ, response, root))
    return response, body


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>console</title>")
    (root / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def test_index_and_assets_with_their_types(dist: Path) -> None:
    response, body = get(dist, "/console/")
    assert response.status == "200 OK" and body.startswith(b"<!doctype html>")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    response, body = get(dist, "/console/app.js")
    assert response.headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert body == b"console.log(1)"
    response, body = get(dist, "/console/app.js", "HEAD")
    assert response.status == "200 OK" and body == b"" and response.headers["Content-Length"] == "14"


def test_bare_prefix_redirects_so_relative_urls_work(dist: Path) -> None:
    response, _ = get(dist, "/console")
    assert response.status.startswith("301") and response.headers["Location"] == "/console/"


def test_nothing_outside_dist_and_no_writes(dist: Path) -> None:
    for path in ("/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/missing.js"):
        response, body = get(dist, path)
        assert response.status == "404 Not Found", path
        assert b"outside" not in body
    response, _ = get(dist, "/console/index.html", "PUT")
    assert response.status.startswith("405")


def test_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    response, body = get(tmp_path / "nothing", "/console/")
    assert response.status == "404 Not Found" and b"make install" in body


def test_only_the_console_prefix_is_claimed() -> None:
    assert is_console_request({"PATH_INFO": "/console/"})
    assert is_console_request({"PATH_INFO": "/console"})
    assert not is_console_request({"PATH_INFO": "/consoles"})
    assert not is_console_request({"PATH_INFO": "/2020-11-20/projects"})


def test_config_json_tells_the_console_where_things_are(dist: Path) -> None:
    response = Response()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/console/config.json"}
    config = {"region": "us-east-1", "artifactsBucket": "openlookout-artifactsbucket"}
    body = b"".join(serve_console(environ, response, dist, config))
    assert response.status == "200 OK" and response.headers["Content-Type"] == "application/json"
    assert json.loads(body) == config
    response, _ = get(dist, "/console/config.json")  # no config given: a plain 404, the page's defaults
    assert response.status == "404 Not Found"
