"""`make reliability`: `openlookout serve` under load, kills and hostile input; one line per check.

    .venv/bin/python bench/reliability.py [--json bench/results/reliability.json]

Starts the service on a fresh data dir inside a temporary folder, trains a small model on the
built-in washers (openlookout.examples), then runs: DetectAnomalies at 1/4/16/32 clients, a
control-plane storm, kill -9 during training, import and update, every bad input of issue 12,
the red team of issue 21 (bench/red_team.py: one line per attack) and SIGTERM under load. Ends
with the totals that must be 0: 5xx answers, requests cut at shutdown, files touched outside the
data dir, sockets outside loopback, and the red team's files touched outside the data dir,
unsigned (or cross-site) calls accepted and active user content served. Exit status 1 if any is
not 0 or a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import red_team  # noqa: E402  # bench/, beside this file
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from tests.contract.conftest import LocalServer, client_for, free_port  # noqa: E402
from tests.contract.test_hardening import _listening, _raw  # noqa: E402
from tests.unit.test_image_checks import bomb_png  # noqa: E402

TOTALS: Counter[str] = Counter()
RESULTS: list[dict[str, Any]] = []


def report(check: str, ok: bool, **figures: Any) -> None:
    shown = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"{'PASS' if ok else 'FAIL'} {check:<28} {shown}", flush=True)
    RESULTS.append({"check": check, "ok": ok, **figures})


def outcome(call: Callable[[], Any]) -> str:
    """'200', the HTTP status of an AWS error, or the exception's name when no answer came."""
    try:
        call()
        return "200"
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status >= 500:
            TOTALS["5xx"] += 1
        return str(status)
    except (BotoCoreError, OSError) as error:
        return type(error).__name__


def wait_status(describe: Callable[[], dict[str, Any]], done: set[str], timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(describe()["Status"])
        if status in done:
            return status
        time.sleep(0.5)
    return "TIMEOUT"


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = LocalServer(root / "data", free_port())
        self.server.start()
        self.lv = client_for(self.server, "lookoutvision", max_pool_connections=64)
        self.s3 = client_for(self.server, "s3", max_pool_connections=64)
        self.project = "washers"

    def restart(self) -> None:
        self.server.start()

    def detect(self, body: bytes, content_type: str = "image/jpeg") -> Any:
        """DetectAnomalies on the bench's hosted model (version 1)."""
        return self.lv.detect_anomalies(
            ProjectName=self.project, ModelVersion="1", Body=body, ContentType=content_type
        )

    def model(self, version: str = "1") -> dict[str, Any]:
        description: dict[str, Any] = self.lv.describe_model(ProjectName=self.project, ModelVersion=version)[
            "ModelDescription"
        ]
        return description

    def dataset(self, project: str, kind: str = "train") -> dict[str, Any]:
        description: dict[str, Any] = self.lv.describe_dataset(ProjectName=project, DatasetType=kind)[
            "DatasetDescription"
        ]
        return description


# ---------------------------------------------------------------- setup: a small hosted model


def setup_model(bench: Bench) -> list[bytes]:
    folder = bench.root / "washers"
    subprocess.run(
        [
            *(sys.executable, "-m", "openlookout.examples", str(folder), "--normal", "30"),
            *("--test-normal", "6", "--per-defect", "3", "--train-per-defect", "0", "--seed", "5"),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    bench.s3.create_bucket(Bucket="washers")
    env = {**os.environ, "AWS_ENDPOINT_URL": bench.server.endpoint_url, "AWS_REGION": "us-east-1"}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    command = ["manifest", "from-folder", str(folder), "--bucket", "washers", "--prefix", "w"]
    subprocess.run([sys.executable, "-m", "openlookout.cli", *command], check=True, env=env, cwd=ROOT)
    bench.lv.create_project(ProjectName=bench.project)
    for kind in ("train", "test"):
        source = {"GroundTruthManifest": {"S3Object": {"Bucket": "washers", "Key": f"w/{kind}.manifest"}}}
        bench.lv.create_dataset(ProjectName=bench.project, DatasetType=kind, DatasetSource=source)
        assert (
            wait_status(lambda k=kind: bench.dataset(bench.project, k), {"CREATE_COMPLETE"})
            == "CREATE_COMPLETE"
        )
    started = time.monotonic()
    bench.lv.create_model(ProjectName=bench.project, OutputConfig={"S3Location": {"Bucket": "washers"}})
    trained = wait_status(bench.model, {"TRAINED", "TRAINING_FAILED"})
    bench.lv.start_model(ProjectName=bench.project, ModelVersion="1", MinInferenceUnits=1)
    hosted = wait_status(bench.model, {"HOSTED", "HOSTING_FAILED"})
    report(
        "setup", hosted == "HOSTED", trained=trained, hosted=hosted, seconds=round(time.monotonic() - started)
    )
    return [p.read_bytes() for p in sorted(folder.glob("test/*/*.jpg"))]


# ---------------------------------------------------------------- load


def detect_load(bench: Bench, images: list[bytes], clients: int, requests: int) -> None:
    def one(index: int) -> tuple[str, float]:
        started = time.perf_counter()
        status = outcome(lambda: bench.detect(images[index % len(images)]))
        return status, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(seconds * 1000 for _, seconds in results)
    errors = Counter(status for status, _ in results if status != "200")
    quantiles = statistics.quantiles(latencies, n=100)
    report(
        f"detect {clients} clients",
        not errors,
        requests=requests,
        per_s=round(requests / wall, 1),
        p50_ms=round(quantiles[49]),
        p95_ms=round(quantiles[94]),
        p99_ms=round(quantiles[98]),
        errors=dict(errors) or 0,
    )


def control_plane_storm(bench: Bench, threads: int = 8, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(index: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            name = f"storm-{index}-{n}"
            n += 1
            for call in (
                lambda n=name: bench.lv.create_project(ProjectName=n),
                lambda n=name: bench.lv.describe_project(ProjectName=n),
                lambda: bench.lv.list_projects(MaxResults=20),
                lambda n=name: bench.lv.delete_project(ProjectName=n),
            ):
                status = outcome(call)
                with lock:
                    counts[status] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    total = sum(counts.values())
    errors = {k: v for k, v in counts.items() if k != "200"}
    report(
        "control-plane storm",
        not errors,
        threads=threads,
        calls=total,
        per_s=round(total / seconds),
        errors=errors or 0,
    )


# ---------------------------------------------------------------- kill -9


def _bystander(bench: Bench) -> Callable[[], dict[str, Any]]:
    """What must not change: every project and the washers datasets."""

    def state() -> dict[str, Any]:
        projects = sorted(p["ProjectName"] for p in bench.lv.list_projects()["Projects"])
        stats = {k: bench.dataset(bench.project, k)["ImageStats"] for k in ("train", "test")}
        return {"projects": projects, "stats": stats}

    return state


def kill_during(
    bench: Bench, what: str, start: Callable[[], None], settled: Callable[[], str], delay: float
) -> None:
    state = _bystander(bench)
    before = state()
    start()
    time.sleep(delay)
    assert bench.server.process is not None
    bench.server.process.kill()
    bench.server.process.wait(10)
    time.sleep(1)  # DynamoDB Local dies with its parent
    bench.restart()
    status = "TIMEOUT"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not status.startswith("OK"):
        status = settled()
        time.sleep(0.5)
    after = state()
    report(
        f"kill -9 during {what}",
        status.startswith("OK") and before == after,
        settled=status.removeprefix("OK "),
        others_unchanged=before == after,
    )


def kill_checks(bench: Bench) -> None:
    def training() -> None:
        bench.lv.create_model(ProjectName=bench.project, OutputConfig={"S3Location": {"Bucket": "washers"}})

    def training_settled() -> str:
        status = bench.model("2")["Status"]
        return f"OK {status}" if status in ("TRAINED", "TRAINING_FAILED") else status

    kill_during(bench, "training", training, training_settled, 3)

    bench.lv.create_project(ProjectName="imports")
    keys = [f"copies/{i}.jpg" for i in range(300)]
    source_key = next(
        o["Key"]
        for o in bench.s3.list_objects_v2(Bucket="washers", Prefix="w/")["Contents"]
        if o["Key"].endswith(".jpg")
    )
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda k: bench.s3.copy_object(
                    Bucket="washers", Key=k, CopySource={"Bucket": "washers", "Key": source_key}
                ),
                keys,
            )
        )
    lines = [
        json.dumps(
            {
                "source-ref": f"s3://washers/{k}",
                "anomaly-label": 0,
                "anomaly-label-metadata": {"class-name": "normal"},
            }
        )
        for k in keys
    ]
    bench.s3.put_object(Bucket="washers", Key="copies.manifest", Body="\n".join(lines).encode())

    def importing() -> None:
        source = {"GroundTruthManifest": {"S3Object": {"Bucket": "washers", "Key": "copies.manifest"}}}
        bench.lv.create_dataset(ProjectName="imports", DatasetType="train", DatasetSource=source)

    def settled(project: str, done: tuple[str, ...]) -> Callable[[], str]:
        return lambda: (lambda status: f"OK {status}" if status in done else status)(
            bench.dataset(project)["Status"]
        )

    kill_during(bench, "import", importing, settled("imports", ("CREATE_COMPLETE", "CREATE_FAILED")), 1.0)
    # An update needs a complete dataset first: 20 lines, imported without interruption.
    bench.lv.create_project(ProjectName="updates")
    bench.s3.put_object(Bucket="washers", Key="small.manifest", Body="\n".join(lines[:20]).encode())
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": "washers", "Key": "small.manifest"}}}
    bench.lv.create_dataset(ProjectName="updates", DatasetType="train", DatasetSource=source)
    wait_status(lambda: bench.dataset("updates"), {"CREATE_COMPLETE", "CREATE_FAILED"})
    changes = "\n".join(lines).encode()
    kill_during(
        bench,
        "update",
        lambda: bench.lv.update_dataset_entries(ProjectName="updates", DatasetType="train", Changes=changes),
        settled("updates", ("UPDATE_COMPLETE", "UPDATE_FAILED_ROLLBACK_COMPLETE")),
        0.5,
    )


# ---------------------------------------------------------------- SIGTERM under load


def sigterm_under_load(bench: Bench, images: list[bytes], clients: int = 16) -> None:
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(index: int) -> None:
        while not stop.is_set():
            status = outcome(lambda: bench.detect(images[index % len(images)]))
            with lock:
                outcomes[status] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    assert bench.server.process is not None
    started = time.monotonic()
    bench.server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    stop.set()
    code = bench.server.process.wait(30)
    seconds = time.monotonic() - started
    for thread in threads:
        thread.join(30)
    # After SIGTERM, refused connections are expected; a cut request is one that got no answer.
    cut = sum(v for k, v in outcomes.items() if k in ("ConnectionClosedError", "ReadTimeoutError"))
    TOTALS["cut"] += cut
    report(
        "SIGTERM under load",
        cut == 0 and code == 0,
        clients=clients,
        answered=outcomes["200"],
        cut=cut,
        exit=code,
        stop_s=round(seconds, 1),
        outcomes=dict(outcomes),
    )
    bench.restart()


# ---------------------------------------------------------------- bad input


def bad_inputs(bench: Bench, outside: Path) -> None:
    def detect(body: bytes) -> Callable[[], Any]:
        return lambda: bench.detect(body, "image/png")

    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("bomb 20000x20000", detect(bomb_png(20000, 20000)), "400"),
        ("9000x9000 png", detect(bomb_png(9000, 9000)), "400"),
        ("cut-off png", detect(bomb_png(200, 200)[:60]), "400"),
        (
            "put key ../../../x",
            lambda: bench.s3.put_object(Bucket="washers", Key="../../../x", Body=b"x"),
            "400",
        ),
        ("list bucket ..", lambda: bench.s3.list_objects_v2(Bucket=".."), "400"),
        (
            "manifest key ../",
            lambda: bench.lv.create_dataset(
                ProjectName=bench.project,
                DatasetType="train",
                DatasetSource={
                    "GroundTruthManifest": {"S3Object": {"Bucket": "washers", "Key": "../../x.manifest"}}
                },
            ),
            "400",
        ),
        (
            "output prefix ../",
            lambda: bench.lv.create_model(
                ProjectName=bench.project,
                OutputConfig={"S3Location": {"Bucket": "washers", "Prefix": "../../../elsewhere/"}},
            ),
            "400",
        ),
        ("dynamodb scan", lambda: client_for(bench.server, "dynamodb").scan(TableName="x"), "403"),
        (
            "stepfunctions list",
            lambda: client_for(bench.server, "stepfunctions").list_state_machines(),
            "403",
        ),
    ]
    for name, call, expected in cases:
        status = outcome(call)
        report(f"bad input: {name}", status == expected, status=status)
    relative = os.path.relpath(outside, bench.server.data_dir / "s3").replace("/", "%2F")
    status, _ = _raw(bench.server, "DELETE", f"/{relative}")
    report("bad input: DELETE /..%2F..", status == 400 and outside.is_dir(), status=status)
    # A 0-byte image in a manifest: CREATE_FAILED at once with the documented message.
    bench.lv.create_project(ProjectName="empty")
    bench.s3.put_object(Bucket="washers", Key="empty.png", Body=b"")
    line = json.dumps(
        {
            "source-ref": "s3://washers/empty.png",
            "anomaly-label": 0,
            "anomaly-label-metadata": {"class-name": "normal"},
        }
    )
    bench.s3.put_object(Bucket="washers", Key="empty.manifest", Body=line.encode())
    started = time.monotonic()
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": "washers", "Key": "empty.manifest"}}}
    bench.lv.create_dataset(ProjectName="empty", DatasetType="train", DatasetSource=source)
    wait_status(lambda: bench.dataset("empty"), {"CREATE_COMPLETE", "CREATE_FAILED"})
    message = bench.dataset("empty")["StatusMessage"]
    seconds = time.monotonic() - started
    report(
        "bad input: 0-byte image", "is empty (0 bytes)" in message and seconds < 15, seconds=round(seconds, 1)
    )
    serve = [sys.executable, "-m", "openlookout.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    result = subprocess.run(
        [*serve, "--data-dir", str(bench.root / "x")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    report(
        "bad input: --host 0.0.0.0",
        result.returncode == 1 and "--allow-remote" in result.stderr,
        exit=result.returncode,
    )


# ---------------------------------------------------------------- the totals


def files_outside(root: Path, data_dir: Path) -> set[str]:
    found = {str(p) for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}
    shared_cache = Path(tempfile.gettempdir()) / "openlookout-models"
    return found | ({str(shared_cache)} if shared_cache.exists() else set())


@contextmanager
def bench_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="openlookout-reliability-") as tmp:
        yield Path(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    started = time.monotonic()
    with bench_root() as root:
        bench = Bench(root)
        try:
            outside = root / "outside"
            outside.mkdir()
            (outside / "keep.txt").write_text("keep")
            images = setup_model(bench)
            target = red_team.prepare(bench.server, (bench.project, "1", "washers"))
            before = files_outside(root, bench.server.data_dir)
            for clients, requests in ((1, 30), (4, 60), (16, 128), (32, 256)):
                detect_load(bench, images, clients, requests)
            control_plane_storm(bench)
            kill_checks(bench)
            if bench.model()["Status"] != "HOSTED":  # a kill -9 leaves it HOSTED; reloaded on first use
                bench.lv.start_model(ProjectName=bench.project, ModelVersion="1", MinInferenceUnits=1)
                wait_status(bench.model, {"HOSTED", "HOSTING_FAILED"})
            assert bench.server.process is not None
            listening = _listening([bench.server.process.pid, *bench.server.child_pids()])
            sockets_outside = [a for a in listening if not a.startswith("127.")]
            bad_inputs(bench, outside)
            red = red_team.run(target, report)
            report("red team totals", not any(red.values()), cases=len(red_team.CASES), **red)
            sigterm_under_load(bench, images)
            touched = sorted(files_outside(root, bench.server.data_dir) - before - {str(root / "x")})
        finally:
            bench.server.stop()
    totals = {
        "5xx": TOTALS["5xx"],
        "cut_at_shutdown": TOTALS["cut"],
        "files_outside_data_dir": len(touched),
        "sockets_outside_loopback": len(sockets_outside),
        "red_team_files_outside_data_dir": red["files_outside"],
        "unsigned_calls_accepted": red["unsigned_accepted"],
        "active_user_content_served": red["active_content"],
        "red_team_defences_failed": red["defences_failed"],
    }
    ok = not any(totals.values()) and all(r["ok"] for r in RESULTS)
    report("totals", ok, seconds=round(time.monotonic() - started), **totals)
    if touched or sockets_outside:
        print("touched:", touched, "sockets:", sockets_outside)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": RESULTS, "totals": totals}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
