"""The web console end to end: a real headless Chromium (Debian's `chromium`, driven by Playwright)
against a real `openlookout serve`, checking after each step what the API says through boto3.

Screenshots of each page land in build/console/ for a look.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from tests.contract.conftest import DUMMY_CREDENTIALS, REGION, ROOT, LocalServer
from tests.unit.test_console_stack import cors_allowed_headers

pytestmark = [pytest.mark.timeout(600)]

SHOTS = ROOT / "build" / "console"
CONSOLE = ROOT / "console" / "dist" / "index.html"
TRAIN_WAIT_MS = 300_000  # a busy 2-core box trains the small set in well under a minute


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("washers")
    subprocess.run(
        [sys.executable, "-m", "openlookout.examples", str(root), "--normal", "12", "--test-normal", "3",
         "--per-defect", "1", "--train-per-defect", "0", "--seed", "5"],
        check=True, capture_output=True,
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def lv(server: LocalServer) -> Any:
    return boto3.client(
        "lookoutvision", endpoint_url=server.endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS,
        config=Config(retries={"max_attempts": 2}),
    )  # fmt: skip


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]  # what the page set (the SDK's headers), lower-case names
    body: bytes


@pytest.fixture(scope="module")
def sent() -> list[SentRequest]:
    """Every API call the console makes, as the browser sent it."""
    return []


@pytest.fixture(scope="module")
def page(server: LocalServer, sent: list[SentRequest]) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or os.environ.get("CHROMIUM")
    assert chromium, "no chromium on PATH: `make install` installs Debian's chromium package"
    assert CONSOLE.is_file(), "the console is not built: run `make console`"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        # The console is served with a strict Content-Security-Policy: anything it blocks is an error.
        tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)

        def record(request: Any) -> None:
            if urlsplit(request.url).path.startswith("/2020-11-20/"):
                body = request.post_data_buffer or b""
                sent.append(SentRequest(request.method, request.url, dict(request.headers), body))

        tab.on("request", record)
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()
        assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(autouse=True)
def failure_screenshot(request: pytest.FixtureRequest, page: Any) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        shot(page, "failure")
        banner = page.locator("#error")
        if banner.count():
            print(f"error banner: {banner.inner_text()}")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def stats(lv: Any, project: str, dataset_type: str) -> dict[str, int]:
    described = lv.describe_dataset(ProjectName=project, DatasetType=dataset_type)["DatasetDescription"]
    return dict(described["ImageStats"])


def s3_client(server: LocalServer) -> Any:
    return boto3.client(
        "s3", endpoint_url=server.endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS,
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def read_s3(s3: Any, location: dict[str, str]) -> str:
    return str(s3.get_object(Bucket=location["Bucket"], Key=location["Key"])["Body"].read().decode())


def check_mask(server: LocalServer, lv: Any, project: str) -> None:
    """The entry has L4V's anomaly-mask-ref, and the PNG holds only white and the type's colour."""
    lines = lv.list_dataset_entries(ProjectName=project, DatasetType="test", AnomalyClass="anomaly")
    entries = [json.loads(line) for line in lines["DatasetEntries"]]
    masked = [e for e in entries if "anomaly-mask-ref" in e]
    assert len(masked) == 1
    colour_map = masked[0]["anomaly-mask-ref-metadata"]["internal-color-map"]
    assert colour_map["1"] == {"class-name": "defect", "hex-color": "#23a436"}
    bucket, key = masked[0]["anomaly-mask-ref"][len("s3://") :].split("/", 1)
    s3 = s3_client(server)
    mask = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).convert("RGB")
    colours = {colour for _, colour in mask.getcolors(1 << 16) or []}
    assert colours == {(255, 255, 255), (0x23, 0xA4, 0x36)}
    painted = sum(count for count, colour in mask.getcolors(1 << 16) or [] if colour != (255, 255, 255))
    assert 0.005 < painted / (mask.width * mask.height) < 0.2  # the stroke and polygon, not the undone dab


def check_onnx_download(page: Any, server: LocalServer, project: str) -> None:
    """The model page's ONNX export is the artifact training wrote, and onnxruntime runs it."""
    onnxruntime = pytest.importorskip("onnxruntime")
    with urllib.request.urlopen(f"{server.endpoint_url}/console/config.json") as response:
        artifacts_bucket = json.load(response)["artifactsBucket"]
    stored = s3_client(server).get_object(Bucket=artifacts_bucket, Key=f"models/{project}/1/model.onnx")
    with page.expect_download() as download_info:
        page.click("#download-onnx")
    download = download_info.value
    assert download.suggested_filename == f"{project}-v1.onnx"
    path = Path(download.path())  # Playwright's copy, gone with the browser
    assert path.read_bytes() == stored["Body"].read()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    with page.expect_download() as download_info:
        page.click("#download-manifest")
    manifest = json.loads(Path(download_info.value.path()).read_text())
    assert manifest["threshold"] > 0 and manifest["input"]["shape"][1] == 3


# Headers the browser sets itself or that CORS always lets through: no preflight asks for them.
BROWSER_HEADERS = {"accept", "accept-language", "content-language", "user-agent", "referer", "origin"}


def check_cors_covers(sent: list[SentRequest]) -> None:
    """Each header the console's SDK sends is one the deployed API's preflight allows."""
    names = {name for request in sent for name in request.headers}
    needed = {n for n in names if n not in BROWSER_HEADERS and not n.startswith("sec-")}
    assert {"authorization", "x-amz-date"} <= needed  # the recorder saw signed SDK calls
    missing = needed - cors_allowed_headers()
    assert not missing, f"template.yaml's Cors.AllowHeaders lacks {missing}"


def verify_sigv4(request: SentRequest, secret_key: str) -> tuple[str, str]:
    """Recomputes the request's SigV4 signature; returns (access key, service) of a valid one."""
    pattern = (
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([^,]+), Signature=(\w{64})"
    )
    match = re.fullmatch(pattern, request.headers["authorization"])
    assert match, request.headers["authorization"]
    key_id, day, region, service, signed_names, signature = match.groups()
    url = urlsplit(request.url)
    # Host and Content-Length are the browser's to set: what it sent, not what the page asked for.
    headers = {"host": url.netloc, "content-length": str(len(request.body)), **request.headers}
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in signed_names.split(";"))
    pairs = parse_qsl(url.query, keep_blank_values=True)
    query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs))
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    path = quote(url.path, safe="/-_.~")  # SigV4 encodes the sent (already encoded) path once more
    canonical = "\n".join([request.method, path, query, canonical_headers, signed_names, payload])
    scope = f"{day}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope, digest])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == signature, canonical
    return key_id, service


def wait_js(page: Any, expression: str, arg: Any = None, timeout_s: float = 30) -> None:
    """page.wait_for_function without eval in the page, which the console's CSP forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def wait_count(page: Any, selector: str, n: int) -> None:
    """Waits until exactly n elements match: the grid re-renders after the API answers, not at once."""
    wait_js(page, "([s, n]) => document.querySelectorAll(s).length === n", [selector, n])
    assert page.locator(selector).count() == n


def upload(page: Any, files: list[Path], label: str) -> None:
    page.select_option("#upload-label", label)
    page.set_input_files("#upload", [str(f) for f in files])
    page.wait_for_selector(f"#upload-progress:has-text('added {len(files)} images')")


def test_console_from_photos_to_trial_detection(
    page: Any, server: LocalServer, lv: Any, images: Path, sent: list[SentRequest]
) -> None:
    project = "console-washers"
    page.goto(f"{server.endpoint_url}/console/")
    page.wait_for_selector("text=Create a project")

    # 1. a project
    page.fill("input[name=project-name]", project)
    page.click("text=Create project")
    page.wait_for_selector("#create-train")
    assert lv.describe_project(ProjectName=project)["ProjectDescription"]["ProjectName"] == project

    # the same name again: the API's ConflictException shows as a readable banner
    page.goto(f"{server.endpoint_url}/console/#/")
    page.fill("input[name=project-name]", project)
    page.click("text=Create project")
    page.wait_for_selector("#error:has-text('ConflictException')")
    shot(page, "projects")

    # 2. the train dataset: 12 normal photos
    page.goto(f"{server.endpoint_url}/console/#/projects/{project}/train")
    page.click("#create-train")
    upload(page, sorted((images / "train" / "good").glob("*.jpg")), "normal")
    assert stats(lv, project, "train") == {"Total": 12, "Labeled": 12, "Normal": 12, "Anomaly": 0}
    wait_count(page, "#grid figure[data-label=normal]", 12)

    # 3. the test dataset: normal photos labeled at upload, two defects unlabeled, then labeled here
    page.click("#tab-test")
    page.click("#create-test")
    upload(page, sorted((images / "test" / "good").glob("*.jpg")), "normal")
    defects = sorted(p for p in (images / "test").glob("*/*.jpg") if p.parent.name != "good")
    upload(page, defects[:2], "")
    assert stats(lv, project, "test") == {"Total": 5, "Labeled": 3, "Normal": 3, "Anomaly": 0}
    page.select_option("#filter", "unlabeled")
    wait_js(page, "document.querySelectorAll('#grid figure').length === 2")
    for figure in page.locator("#grid figure[data-label=unlabeled]").all():
        figure.click()
    page.click("#label-anomaly")
    page.wait_for_selector("#grid:has-text('No image here')")
    assert stats(lv, project, "test") == {"Total": 5, "Labeled": 5, "Normal": 3, "Anomaly": 2}
    page.select_option("#filter", "all")
    wait_js(page, "document.querySelectorAll('#grid figure[data-label=anomaly]').length === 2")

    # 4. paint one mask: a brush stroke, an undone stroke, a polygon
    page.locator("#grid figure[data-label=anomaly]").first.click()
    page.click("#paint-mask")
    canvas = page.locator("#mask-canvas")
    wait_js(page, "document.querySelector('#mask-canvas').width === 256")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3, steps=8)
    page.mouse.up()
    page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8)  # a stray dab...
    page.click("#undo")  # ...undone
    page.click("#tool-polygon")
    box = canvas.bounding_box()  # the toolbar may have grown
    for fx, fy in ((0.6, 0.6), (0.7, 0.6), (0.65, 0.7)):
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    page.click("#close-polygon")
    shot(page, "mask-editor")
    page.click("#save-mask")
    page.wait_for_selector("#mask-editor", state="detached")
    page.wait_for_selector("#grid figure .type:has-text('defect')")
    check_mask(server, lv, project)
    wait_js(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "dataset")

    # 5. train, watching the status the API reports
    page.click("#tab-models")
    page.fill("#model-description", "trained-in-the-console")
    page.click("#train")
    page.wait_for_selector("#models .status")
    page.wait_for_selector("#models .status[data-status=TRAINED]", timeout=TRAIN_WAIT_MS)
    model = lv.describe_model(ProjectName=project, ModelVersion="1")["ModelDescription"]
    assert model["Status"] == "TRAINED" and model["Description"] == "trained-in-the-console"
    shot(page, "models")

    # 6. the evaluation, as the API reports it
    page.click("text=version 1")
    page.wait_for_selector("#model-status .status[data-status=TRAINED]")
    f1 = model["Performance"]["F1Score"]
    assert page.locator("[data-metric=f1]").inner_text() == f"{f1:.3f}"
    s3 = s3_client(server)
    result = json.loads(read_s3(s3, model["EvaluationResult"]))["AggregatedEvaluationResults"]["Metrics"]
    judged = read_s3(s3, model["EvaluationManifest"]).splitlines()
    page.wait_for_selector(f"[data-metric=tested]:has-text('{len(judged)}')")
    assert page.locator("[data-metric=rocauc]").inner_text() == f"{result['ROCAUC']:.3f}"
    wait_count(page, "#evaluation-images figure", len(judged))
    wait_js(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "evaluation")

    # the ONNX export, as `openlookout export` downloads it
    check_onnx_download(page, server, project)

    # 7. host it
    page.click("#start-model")
    page.wait_for_selector("#model-status .status[data-status=HOSTED]", timeout=60_000)
    assert lv.describe_model(ProjectName=project, ModelVersion="1")["ModelDescription"]["Status"] == "HOSTED"

    # 8. trial detection: the page shows what DetectAnomalies says for the same image
    trial = [defects[2], sorted((images / "test" / "good").glob("*.jpg"))[0]]
    page.set_input_files("#trial-files", [str(p) for p in trial])
    page.wait_for_selector("#verdict")
    expected = lv.detect_anomalies(
        ProjectName=project, ModelVersion="1", ContentType="image/jpeg", Body=trial[0].read_bytes()
    )["DetectAnomalyResult"]
    assert page.locator("#verdict").get_attribute("data-anomalous") == str(expected["IsAnomalous"]).lower()
    assert page.locator("#confidence").inner_text() == f"{expected['Confidence']:.3f}"
    page.locator("#opacity").evaluate(
        "e => { e.value = '0.7'; e.dispatchEvent(new Event('input', {bubbles: true})) }"
    )
    assert page.locator("img.mask").evaluate("e => getComputedStyle(e).opacity") == "0.7"
    shot(page, "trial")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f"#trial:has-text('2 / 2: {trial[1].name}')")
    page.wait_for_selector("#verdict")

    # 9. stop hosting
    page.click("#stop-model")
    page.wait_for_selector("#model-status .status[data-status=TRAINED]", timeout=60_000)
    assert lv.describe_model(ProjectName=project, ModelVersion="1")["ModelDescription"]["Status"] == "TRAINED"
    shot(page, "model")

    # every call was signed with the local dummy credentials, for lookoutvision, and each header
    # the SDK sent is one that the deployed API's CORS preflight allows
    assert {verify_sigv4(request, "console") for request in sent} == {("console", "lookoutvision")}
    check_cors_covers(sent)


def test_sign_in_signs_for_execute_api_and_keeps_the_keys_in_the_tab(
    page: Any, server: LocalServer, lv: Any, sent: list[SentRequest]
) -> None:
    """A deployed stack's sign-in: the local gateway checks no signature, so the test does."""
    lv.create_project(ProjectName="console-signed-in")
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSIGNIN"
    page.goto(f"{server.endpoint_url}/console/#/")
    page.click("text=Connection")
    page.get_by_label("Access key ID").fill("AKIASIGNINTEST")
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_label("Session token (optional)").fill("session-token-1")
    page.get_by_label("Deployed stack (API Gateway, IAM signing)").check()
    shot(page, "connection")
    del sent[:]
    page.click("button:has-text('Save')")  # the page reloads with the new settings
    page.wait_for_selector("text=console-signed-in")
    listing = [r for r in sent if urlsplit(r.url).path == "/2020-11-20/projects" and r.method == "GET"]
    assert listing, [r.url for r in sent]
    for request in sent:
        assert verify_sigv4(request, secret) == ("AKIASIGNINTEST", "execute-api")
        assert request.headers["x-amz-security-token"] == "session-token-1"
        assert request.url.startswith(server.endpoint_url)  # nowhere else
        assert secret not in json.dumps(request.headers) + request.url + request.body.decode(errors="replace")
    check_cors_covers(sent)
    stored = page.evaluate("[JSON.stringify(sessionStorage), localStorage.length, document.cookie]")
    assert secret in stored[0] and stored[1:] == [0, ""]  # the tab's sessionStorage only

    # sign-out: the keys leave the tab, and the page is back on the defaults
    page.click("text=Connection")
    del sent[:]
    page.click("#sign-out")
    page.wait_for_selector("text=console-signed-in")
    assert secret not in page.evaluate("JSON.stringify(sessionStorage)")
    assert {verify_sigv4(request, "console")[1] for request in sent} == {"lookoutvision"}


def test_the_local_service_answers_no_cross_origin_caller(server: LocalServer) -> None:
    """Loopback stays closed to other origins: the console is same-origin under `openlookout serve`."""
    for method in ("OPTIONS", "GET"):
        request = urllib.request.Request(
            f"{server.endpoint_url}/2020-11-20/projects", method=method,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request) as response:
                headers = response.headers
        except urllib.error.HTTPError as error:
            headers = error.headers
        assert "Access-Control-Allow-Origin" not in headers, method
