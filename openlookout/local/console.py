"""The web console's built files (console/dist, made by `make install`) served at /console/.

Static files only: the console is a browser client of the public API, like boto3.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PREFIX = "/console"
# The page loads only its own files and calls only this origin; no one may frame it.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DIST = Path(__file__).resolve().parents[2] / "console" / "dist"


def is_console_request(environ: dict[str, Any]) -> bool:
    path = str(environ.get("PATH_INFO", ""))
    return path == PREFIX or path.startswith(PREFIX + "/")


def _send(start_response: Any, status: str, body: bytes, content_type: str, method: str) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-cache"),  # a rebuilt console shows at the next reload
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", POLICY),
        ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers that predate it
        ("Referrer-Policy", "no-referrer"),
    ]
    start_response(status, headers)
    return [] if method == "HEAD" else [body]


def serve_console(
    environ: dict[str, Any], start_response: Any, root: Path = DIST, config: Mapping[str, Any] | None = None
) -> Iterable[bytes]:
    """The built files; `config` answers config.json (where the service keeps what the console reads)."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = str(environ.get("PATH_INFO", ""))
    if path == f"{PREFIX}/config.json" and config is not None and method in ("GET", "HEAD"):
        return _send(start_response, "200 OK", json.dumps(config).encode(), "application/json", method)
    if path == PREFIX:  # relative asset URLs need the trailing slash
        start_response("301 Moved Permanently", [("Location", PREFIX + "/"), ("Content-Length", "0")])
        return []
    if method not in ("GET", "HEAD"):
        return _send(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain", method)
    relative = path[len(PREFIX) + 1 :] or "index.html"
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():  # no escape from dist/
        if not (base / "index.html").is_file():
            message = b"The console is not built: run `make install` (or `make console`).\n"
            return _send(start_response, "404 Not Found", message, "text/plain", method)
        return _send(start_response, "404 Not Found", b"Not found\n", "text/plain", method)
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    return _send(start_response, "200 OK", target.read_bytes(), content_type, method)
