"""The `openlookout` client commands against `openlookout serve`: one small project trained once.

Every command reports in one style: tables with a header (never a header above an error), `--json`
that parses, `--endpoint-url` on every client command, and no traceback: one line on stderr, exit
code 1 for the service's errors and 2 for the command line's.
"""

from __future__ import annotations

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

from openlookout.cli import build_parser, main
from openlookout.cli.overlay import overlay_name
from openlookout.cli.progress import progress_bar
from openlookout.cli.report import report_prefix, targets_under
from openlookout.examples import generate
from tests.contract.conftest import DUMMY_CREDENTIALS, REGION, LocalServer, Service

ROOT = Path(__file__).resolve().parents[2]
# The commands that run the service or the edge agent rather than call it.
NOT_CLIENTS = {"serve", "edge-agent"}


@pytest.fixture(scope="module")
def endpoint(service: Service) -> str:
    if not isinstance(service, LocalServer):
        pytest.skip("trains a model on the local service (OPENLOOKOUT_ENDPOINT is set)")
    return service.endpoint_url


def cli(endpoint: str, *args: str) -> int:
    return main([*args, "--endpoint-url", endpoint])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, its stdout, stderr and exit code."""
    command = [sys.executable, "-m", "openlookout.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def trained(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """(project, images folder, what `train --wait` printed): model 1 trained through the commands."""
    root = tmp_path_factory.mktemp("cli")
    images = generate(root / "washers", normal=20, test_normal=4, per_defect=2, train_per_defect=1)
    project, bucket = f"cli-{uuid.uuid4().hex[:6]}", f"cli-{uuid.uuid4().hex[:6]}"
    session = boto3.session.Session(region_name=REGION, **DUMMY_CREDENTIALS)
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    # from-folder as a user runs it, with --endpoint-url and no AWS settings at all.
    upload = run("manifest", "from-folder", str(images), "--bucket", bucket, "--prefix", "w",
                 "--endpoint-url", endpoint, env={"PATH": "/usr/bin:/bin", "HOME": str(root)})  # fmt: skip
    assert upload.returncode == 0, upload.stderr
    assert upload.stdout.splitlines() == [
        f"s3://{bucket}/w/train.manifest: 23 images (20 normal, 3 anomaly, 3 with masks)",
        f"s3://{bucket}/w/test.manifest: 10 images (4 normal, 6 anomaly, 6 with masks)",
    ]
    assert "uploaded: 33 of 33" in upload.stderr.splitlines()[-1]  # progress, on stderr
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
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("openlookout ")
    listed = run("--help").stdout
    for name in ("serve", "manifest", "projects", "datasets", "models", "train", "start", "stop", "detect"):
        assert f"    {name} " in listed
    assert "export" in listed and "report" in listed and "edge-agent" in listed


def _leaf_parsers(parser: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """(command words, parser) for every command that runs something."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix, parser
    for action in actions:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, (*prefix, name))


def test_every_client_command_takes_endpoint_url_and_region() -> None:
    leaves = dict(_leaf_parsers(build_parser()))
    assert {("datasets", "list"), ("datasets", "describe"), ("datasets", "entries")} <= set(leaves)
    assert ("manifest", "from-folder") in leaves
    for words, parser in leaves.items():
        options = {o for action in parser._actions for o in action.option_strings}  # type: ignore[attr-defined]
        if words[0] in NOT_CLIENTS:
            continue
        assert {"--endpoint-url", "--region"} <= options, words


def test_edge_agent_help_describes_it() -> None:
    shown = run("edge-agent", "--help").stdout
    assert "EdgeAgent gRPC API" in shown.split("options:")[0].split("\n\n", 1)[1]  # a description paragraph


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run(
        "detect", "widgets", "1", str(tmp_path / "nofile.jpg"), "--endpoint-url", "http://127.0.0.1:9"
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert "nofile.jpg: no such file" in one_line_error(missing)
    for args in (
        ["train", "p", "--output", "not-s3"],
        ["projects"],
        ["datasets", "entries", "p", "validation"],
    ):
        done = run(*args)
        assert done.returncode == 2, args
        one_line_error(done)
    (tmp_path / "pictures").mkdir()
    layout = run("manifest", "from-folder", str(tmp_path / "pictures"), "--bucket", "b")
    assert layout.returncode == 2 and "neither train/ and test/ folders" in one_line_error(layout)


def test_an_unreachable_service_is_one_line_and_exit_1() -> None:
    done = run("projects", "list", "--endpoint-url", "http://127.0.0.1:9")
    assert done.returncode == 1 and done.stdout == ""  # no header above the error
    assert "Could not connect" in one_line_error(done)


def test_projects_create_list_delete_and_errors(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"cli-p-{uuid.uuid4().hex[:6]}"
    assert cli(endpoint, "projects", "create", name) == 0
    assert f"project/{name}" in capsys.readouterr().out
    assert cli(endpoint, "projects", "create", name) == 1
    assert "ConflictException" in capsys.readouterr().err
    assert cli(endpoint, "projects", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["project", "created"] and any(line.startswith(name) for line in table)
    assert cli(endpoint, "projects", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert name in [p["ProjectName"] for p in listed] and "T" in listed[0]["CreationTimestamp"]
    assert cli(endpoint, "projects", "delete", name) == 0
    capsys.readouterr()
    assert cli(endpoint, "projects", "delete", name) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("openlookout: ResourceNotFoundException: ")


def test_datasets_list_describe_entries(
    trained: tuple[str, Path, str], endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _, _ = trained
    assert cli(endpoint, "datasets", "list", project) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["type", "status", "message"]
    assert sorted(line.split()[:2] for line in table[1:]) == [
        ["test", "CREATE_COMPLETE"],
        ["train", "CREATE_COMPLETE"],
    ]
    assert cli(endpoint, "datasets", "describe", project, "--type", "test") == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["type", "status", "total", "labeled", "normal", "anomaly"],
        ["test", "CREATE_COMPLETE", "10", "10", "4", "6"],
    ]
    assert (
        cli(endpoint, "datasets", "entries", project, "test", "--class", "anomaly", "--contains", "stain")
        == 0
    )
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["label", "mask", "image"] and len(table) == 3
    assert all(line.split()[:2] == ["anomaly", "yes"] and "/test/stain/" in line for line in table[1:])
    assert cli(endpoint, "datasets", "entries", project, "train", "--json", "--labeled", "yes") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 23 and all("source-ref" in line for line in lines)  # the manifest lines
    assert cli(endpoint, "datasets", "describe", "no-such-project") == 1
    printed = capsys.readouterr()
    assert printed.out == "" and "ResourceNotFoundException" in printed.err


def test_train_wait_printed_progress_and_the_model(
    trained: tuple[str, Path, str], endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _, printed = trained
    # StatusMessage moved on from CreateModel's text to the workflow's stages while TRAINING.
    assert printed.startswith("model 1: TRAINING\n")
    assert "Downloading 42 images and masks" in printed
    assert printed.splitlines()[-1].startswith("model 1: TRAINED (F1Score ")
    assert cli(endpoint, "models", "list", project) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["version", "status", "F1", "message"] and table[1].split()[:2] == [
        "1",
        "TRAINED",
    ]
    assert cli(endpoint, "models", "describe", project, "1") == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert rows["field"] == "value" and rows["Status"] == "TRAINED" and "F1Score" in rows["Performance"]
    assert cli(endpoint, "models", "describe", project, "1", "--json") == 0
    described = json.loads(capsys.readouterr().out)
    assert described["Status"] == "TRAINED" and described["Performance"]["F1Score"] > 0
    assert cli(endpoint, "models", "wait", project, "1") == 0
    assert "model 1: TRAINED" in capsys.readouterr().out


def test_start_detect_with_overlays_stop(
    trained: tuple[str, Path, str], endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, images, _ = trained
    assert cli(endpoint, "detect", project, "1", str(images / "test/good/000.jpg")) == 1
    printed = capsys.readouterr()
    assert printed.out == ""  # no table header above the error
    assert printed.err.startswith("openlookout: ConflictException: ")  # TRAINED, not HOSTED
    assert cli(endpoint, "start", project, "1", "--wait") == 0
    assert "HOSTED" in capsys.readouterr().out
    pictures = [images / "test/good/000.jpg", images / "test/stain/000.jpg"]
    assert cli(endpoint, "detect", project, "1", *map(str, pictures), "--overlay", str(tmp_path / "cli")) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["image", "anomalous", "confidence", "anomalies"]
    assert table[1].startswith("good/000.jpg") and table[2].startswith("stain/000.jpg")
    written = sorted(p.name for p in (tmp_path / "cli").glob("*.png"))
    assert written == ["good_000.png", "stain_000.png"] == sorted(map(overlay_name, pictures))
    overlay = Image.open(tmp_path / "cli" / "stain_000.png")
    assert overlay.width >= 256 and overlay.height > 256  # the image plus a caption band
    assert cli(endpoint, "detect", project, "1", *map(str, pictures), "--json") == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["Image"] for a in answers] == list(map(str, pictures))
    assert all("AnomalyMask" not in a and isinstance(a["IsAnomalous"], bool) for a in answers)
    assert answers[1]["Anomalies"][0]["Name"] == "background"
    _demo_names_its_overlays_alike(endpoint, project, pictures, tmp_path / "demo")
    assert cli(endpoint, "stop", project, "1", "--wait") == 0
    assert "model 1: TRAINED" in capsys.readouterr().out


def _demo_names_its_overlays_alike(
    endpoint: str, project: str, pictures: list[Path], directory: Path
) -> None:
    """`make demo` (examples/walkthrough.py) writes the same names as `detect --overlay`."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import walkthrough
    finally:
        sys.path.remove(str(ROOT / "examples"))
    lv = boto3.session.Session(region_name=REGION, **DUMMY_CREDENTIALS).client(
        "lookoutvision", endpoint_url=endpoint
    )
    results = [
        lv.detect_anomalies(
            ProjectName=project, ModelVersion="1", Body=p.read_bytes(), ContentType="image/jpeg"
        )["DetectAnomalyResult"]
        for p in pictures
    ]
    written = walkthrough.save_detections(
        [(p, p.read_bytes(), r) for p, r in zip(pictures, results, strict=True)], directory
    )
    assert sorted(p.name for p in written) == ["good_000.png", "stain_000.png"]


def test_export_gives_a_model_onnxruntime_can_run(
    trained: tuple[str, Path, str], endpoint: str, tmp_path: Path
) -> None:
    project, images, _ = trained
    assert cli(endpoint, "export", project, "1", str(tmp_path)) == 0
    assert {"model.onnx", "model.json", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    assert "onnxruntime" in (tmp_path / "README.md").read_text()
    from openlookout.ml.serving.inference import Detector

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


def test_progress_bar_report_prefix_and_containment(tmp_path: Path) -> None:
    assert progress_bar("Evaluating: 40 of 80").startswith("[##########----------]  50%")
    assert progress_bar("Extracting features: 120 of 200 images").startswith("[############--------]  60%")
    assert progress_bar("Building memory bank").strip() == ""
    assert progress_bar("coreset: 10 of 20 patches").strip() == ""  # a log line, not a stage
    assert report_prefix("out/EvaluationResult-p-1.json") == "out/EvaluationReport-p-1/"
    assert report_prefix("EvaluationResult-p-1.json") == "EvaluationReport-p-1/"
    assert targets_under(tmp_path, {"k": "overlays/a.png"}) == {"k": tmp_path / "overlays" / "a.png"}
    assert targets_under(tmp_path, {"k": "../x.html", "l": "overlays/../../x", "m": "/etc/passwd"}) == {}


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

    from openlookout.cli.connection import Clients
    from tests.contract.conftest import free_port

    project, _, _ = trained
    clients = Clients(endpoint, REGION)
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
        monkeypatch.setattr(Clients, "of", classmethod(lambda cls, args: clients))
        assert cli(endpoint, "report", project, "1", str(out)) == 0
    finally:
        server.stop()
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["report/index.html", "report/overlays/a.png"]
    warnings = capsys.readouterr().err
    assert all(f"skipped {name!r}" in warnings for name in escapes), warnings
