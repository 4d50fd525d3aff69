"""The `openlookout` client commands against `openlookout serve`: one small project trained once."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from PIL import Image

from openlookout.cli import main
from openlookout.commands import progress_bar, report_prefix
from openlookout.examples import generate
from tests.contract.conftest import DUMMY_CREDENTIALS, REGION, LocalServer, Service

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint(service: Service) -> str:
    if not isinstance(service, LocalServer):
        pytest.skip("trains a model on the local service (OPENLOOKOUT_ENDPOINT is set)")
    return service.endpoint_url


def cli(endpoint: str, *args: str) -> int:
    return main([*args, "--endpoint-url", endpoint])


@pytest.fixture(scope="module")
def trained(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """(project, images folder, what `train --wait` printed): model 1 trained through the commands."""
    root = tmp_path_factory.mktemp("cli")
    images = generate(root / "washers", normal=20, test_normal=4, per_defect=2, train_per_defect=1)
    project, bucket = f"cli-{uuid.uuid4().hex[:6]}", f"cli-{uuid.uuid4().hex[:6]}"
    session = boto3.session.Session(region_name=REGION, **DUMMY_CREDENTIALS)
    s3 = session.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "x"}
    env |= {"AWS_SECRET_ACCESS_KEY": "x", "PATH": "/usr/bin:/bin"}
    upload = [sys.executable, "-m", "openlookout.cli", "manifest", "from-folder", str(images)]
    subprocess.run([*upload, "--bucket", bucket, "--prefix", "w"], check=True, env=env, cwd=ROOT)
    assert cli(endpoint, "projects", "create", project) == 0
    lv = session.client("lookoutvision", endpoint_url=endpoint)
    from openlookout.client import wait_for_dataset

    for kind in ("train", "test"):
        source = {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Key": f"w/{kind}.manifest"}}}
        lv.create_dataset(ProjectName=project, DatasetType=kind, DatasetSource=source)
        wait_for_dataset(lv, project, kind)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli(endpoint, "train", project, "--output", f"s3://{bucket}/out/", "--wait") == 0
    yield project, images, printed.getvalue()


def test_version_and_help_list_every_command() -> None:
    command = [sys.executable, "-m", "openlookout.cli"]
    version = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("openlookout ")
    listed = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("serve", "manifest", "projects", "datasets", "models", "train", "start", "stop", "detect"):
        assert f"    {name} " in listed
    assert "export" in listed and "report" in listed


def test_projects_create_list_delete_and_errors(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"cli-p-{uuid.uuid4().hex[:6]}"
    assert cli(endpoint, "projects", "create", name) == 0
    assert f"project/{name}" in capsys.readouterr().out
    assert cli(endpoint, "projects", "create", name) == 1
    assert "ConflictException" in capsys.readouterr().err
    assert cli(endpoint, "projects", "list") == 0
    assert name in capsys.readouterr().out
    assert cli(endpoint, "projects", "delete", name) == 0
    assert cli(endpoint, "projects", "delete", name) == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_train_wait_printed_progress_and_the_model(
    trained: tuple[str, Path, str], endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _, printed = trained
    # StatusMessage moved on from CreateModel's text to the workflow's stages while TRAINING.
    assert "TRAINING" in printed and "Downloading 42 images and masks" in printed
    assert "model 1: TRAINED (F1Score" in printed
    assert cli(endpoint, "datasets", "describe", project) == 0
    out = capsys.readouterr().out
    assert "train  CREATE_COMPLETE" in out and "test   CREATE_COMPLETE" in out
    assert cli(endpoint, "models", "list", project) == 0
    assert "TRAINED" in capsys.readouterr().out
    assert cli(endpoint, "models", "describe", project, "1") == 0
    described = json.loads(capsys.readouterr().out)
    assert described["Status"] == "TRAINED" and described["Performance"]["F1Score"] > 0
    assert cli(endpoint, "models", "wait", project, "1") == 0
    assert "model 1: TRAINED" in capsys.readouterr().out


def test_start_detect_with_overlays_stop(
    trained: tuple[str, Path, str], endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, images, _ = trained
    assert cli(endpoint, "detect", project, "1", str(images / "test/good/000.jpg")) == 1
    assert "ConflictException" in capsys.readouterr().err  # TRAINED, not HOSTED
    assert cli(endpoint, "start", project, "1", "--wait") == 0
    assert "HOSTED" in capsys.readouterr().out
    pictures = [images / "test/good/000.jpg", images / "test/stain/000.jpg"]
    assert cli(endpoint, "detect", project, "1", *map(str, pictures), "--overlay", str(tmp_path)) == 0
    table = capsys.readouterr().out
    assert "good/000.jpg" in table and "stain/000.jpg" in table
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["good_000.png", "stain_000.png"]
    overlay = Image.open(tmp_path / "stain_000.png")
    assert overlay.width >= 256 and overlay.height > 256  # the image plus a caption band
    assert cli(endpoint, "detect", project, "1", str(pictures[1]), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["Image"] == str(pictures[1]) and isinstance(answer["IsAnomalous"], bool)
    assert base64.b64decode(answer["AnomalyMask"]).startswith(b"\x89PNG")
    assert cli(endpoint, "stop", project, "1", "--wait") == 0
    assert "model 1: TRAINED" in capsys.readouterr().out


def test_export_gives_a_model_onnxruntime_can_run(
    trained: tuple[str, Path, str], endpoint: str, tmp_path: Path
) -> None:
    project, images, _ = trained
    assert cli(endpoint, "export", project, "1", str(tmp_path)) == 0
    assert {"model.onnx", "model.json", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    assert "onnxruntime" in (tmp_path / "README.md").read_text()
    from openlookout.ml.inference import Detector

    result = Detector.load(tmp_path).detect((images / "test/good/000.jpg").read_bytes())
    assert 0.0 <= result.confidence <= 1.0
    # The README's onnxruntime-only snippet runs as written, beside the exported files.
    snippet = (tmp_path / "README.md").read_text().split("```python")[2].split("```")[0]
    (tmp_path / "part.jpg").write_bytes((images / "test/good/000.jpg").read_bytes())
    ran = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0 and "anomalous: " in ran.stdout, ran.stderr


def test_report_downloads_the_evaluation_report(
    trained: tuple[str, Path, str], endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _, _ = trained
    assert cli(endpoint, "report", project, "1", str(tmp_path)) == 0
    names = {p.name for p in tmp_path.rglob("*.png")}
    assert {"roc.png", "pr.png", "scores.png"} <= names
    # One self-contained page: every one of the 10 test images labelled, nothing fetched from elsewhere.
    page = (tmp_path / "index.html").read_text()
    assert "Confusion matrix" in page and 'src="http' not in page and "<link" not in page
    assert page.count("<figure>") == 10 == len(list((tmp_path / "overlays").glob("*.png")))
    assert page.count("data:image/png;base64,") == 10 + 3
    assert cli(endpoint, "report", project, "7", str(tmp_path)) == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_progress_bar_and_report_prefix() -> None:
    assert progress_bar("Evaluating: 40 of 80").startswith("[##########----------]  50%")
    assert progress_bar("Extracting features: 120 of 200 images").startswith("[############--------]  60%")
    assert progress_bar("Building memory bank").strip() == ""
    assert progress_bar("coreset: 10 of 20 patches").strip() == ""  # a log line, not a stage
    assert report_prefix("out/EvaluationResult-p-1.json") == "out/EvaluationReport-p-1/"
    assert report_prefix("EvaluationResult-p-1.json") == "EvaluationReport-p-1/"


def test_report_never_writes_outside_its_directory(
    trained: tuple[str, Path, str],
    endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Keys that someone else wrote under the report's prefix land inside DIR or are skipped.

    AWS S3 stores keys with `../`, a leading `/`, backslashes and empty segments; the local S3 refuses
    them, so here the report's bucket is a moto S3 server (real HTTP, any key), and the command's S3
    client is pointed at it while DescribeModel still goes to `openlookout serve`."""
    from moto.server import ThreadedMotoServer

    from openlookout import commands
    from tests.contract.conftest import free_port

    project, _, _ = trained
    clients = commands.Clients(endpoint, REGION)
    described = clients.lookoutvision.describe_model(ProjectName=project, ModelVersion="1")
    location = described["ModelDescription"]["EvaluationResult"]
    prefix, out = report_prefix(location["Key"]), tmp_path / "report"
    escapes = ["../parent.txt", "a/../../up.txt", f"{tmp_path}/absolute.txt", "..\\back.txt", "sub//x.txt"]
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        moto_url = f"http://127.0.0.1:{port}"
        clients.s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION, **DUMMY_CREDENTIALS)
        clients.s3.create_bucket(Bucket=location["Bucket"])
        for name in ["index.html", "overlays/a.png", *escapes]:
            clients.s3.put_object(Bucket=location["Bucket"], Key=prefix + name, Body=name.encode())
        listed = clients.s3.list_objects_v2(Bucket=location["Bucket"], Prefix=prefix)["Contents"]
        assert len(listed) == 2 + len(escapes)  # the server kept every key as written
        monkeypatch.setattr(commands, "_clients", lambda args: clients)
        assert cli(endpoint, "report", project, "1", str(out)) == 0
    finally:
        server.stop()
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["report/index.html", "report/overlays/a.png"]
    warnings = capsys.readouterr().err
    assert all(f"skipped {name!r}" in warnings for name in escapes), warnings
