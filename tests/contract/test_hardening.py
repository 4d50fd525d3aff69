"""Security probes against `openlookout serve` started with its default flags: nothing outside
the data dir can be read, written or deleted through the S3 or L4V APIs, the backends listen
on loopback only, the dynamodb/states routes answer only the service's own handlers, a
non-loopback --host needs --allow-remote, and SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.contract.conftest import ROOT, LocalServer, client_for, free_port
from tests.contract.signing import signed_headers

pytestmark = pytest.mark.contract

FAKE_SIGNATURE = (
    "AWS4-HMAC-SHA256 Credential=outsider/20260101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of its own, with no flags: the session's server opens the backend routes."""
    if os.environ.get("OPENLOOKOUT_ENDPOINT"):
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")
    root = tmp_path_factory.mktemp("hardened")
    server = LocalServer(root / "data", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def outside(hardened: LocalServer) -> Path:
    """A folder next to the data dir, with a file in it: no request may touch either."""
    folder = hardened.data_dir.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "keep.txt").write_text("keep")
    return folder


def _raw(server: LocalServer, method: str, path: str, service: str = "s3", **headers: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        if service:
            headers.setdefault("Authorization", FAKE_SIGNATURE.format(service=service))
            headers.setdefault("X-Amz-Date", "20260101T000000Z")
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _files_outside(data_dir: Path) -> set[Path]:
    return {p for p in data_dir.parent.rglob("*") if data_dir not in p.parents and p != data_dir}


def _error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_object_keys_that_leave_the_bucket_are_refused(hardened: LocalServer, outside: Path) -> None:
    s3 = client_for(hardened, "s3")
    s3.create_bucket(Bucket="probe-keys")
    before = _files_outside(hardened.data_dir)
    for key in ("../../../x", "a/../../../../outside/keep.txt", "..", "a/./b", "..\\..\\x"):
        with pytest.raises(ClientError) as error:
            s3.put_object(Bucket="probe-keys", Key=key, Body=b"escape")
        assert _error_code(error) == "InvalidArgument", key
        assert "'.' or '..'" in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket="probe-keys", Key="k" * 1025, Body=b"long")
    assert _error_code(error) == "KeyTooLongError"
    assert _files_outside(hardened.data_dir) == before
    s3.put_object(Bucket="probe-keys", Key="a/..b/c..", Body=b"fine")  # dots inside a name are fine
    assert s3.get_object(Bucket="probe-keys", Key="a/..b/c..")["Body"].read() == b"fine"


def test_bucket_names_that_leave_the_s3_folder_are_refused(hardened: LocalServer, outside: Path) -> None:
    s3 = client_for(hardened, "s3")
    with pytest.raises(ClientError) as error:
        s3.list_objects_v2(Bucket="..")
    assert _error_code(error) == "InvalidBucketName"
    with pytest.raises(ClientError) as error:
        s3.create_bucket(Bucket="Upper_Case")
    assert _error_code(error) == "InvalidBucketName"
    # DeleteBucket of an encoded path outside the data dir: s3rver used to delete it recursively.
    relative = os.path.relpath(outside, hardened.data_dir / "s3").replace("/", "%2F")
    status, body = _raw(hardened, "DELETE", f"/{relative}")
    assert status == 400 and "InvalidBucketName" in body, body
    # The same through the Host header (s3rver took a host name as a virtual-hosted bucket): a
    # Host that is not the endpoint's own is refused before anything reads it.
    status, body = _raw(hardened, "GET", "/", Host="..")
    assert status == 403 and "AccessDenied" in body and "Host" in body, body
    assert (outside / "keep.txt").read_text() == "keep"


def test_l4v_locations_that_leave_the_bucket_are_validation_errors(hardened: LocalServer) -> None:
    lookoutvision = client_for(hardened, "lookoutvision")
    project = f"escape-{os.urandom(4).hex()}"
    lookoutvision.create_project(ProjectName=project)
    try:
        with pytest.raises(ClientError) as error:
            lookoutvision.create_dataset(
                ProjectName=project,
                DatasetType="train",
                DatasetSource={
                    "GroundTruthManifest": {
                        "S3Object": {"Bucket": "b-1", "Key": "../../../elsewhere/x.manifest"}
                    }
                },
            )
        assert _error_code(error) == "ValidationException"
        assert "s3://b-1/../../../elsewhere/x.manifest" in error.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as error:
            lookoutvision.create_model(
                ProjectName=project,
                OutputConfig={"S3Location": {"Bucket": "b-1", "Prefix": "../../../elsewhere/"}},
            )
        assert _error_code(error) == "ValidationException"
        assert "'.' or '..'" in error.value.response["Error"]["Message"]
        # Nothing half-written: the dataset was not created.
        datasets = lookoutvision.describe_project(ProjectName=project)["ProjectDescription"]["Datasets"]
        assert datasets == []
    finally:
        lookoutvision.delete_project(ProjectName=project)


def _listening(pids: list[int]) -> list[str]:
    """host:port of every listening TCP socket the processes hold (Linux /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                address, port = fields[1].split(":")
                found.append(f"{_ip(address)}:{int(port, 16)}")
    return found


def _ip(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # /proc prints IPv6 as 4 host-order words
    flat = b"".join(words)
    if flat[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in flat[12:])  # IPv4-mapped
    return flat.hex()


def test_every_socket_listens_on_loopback_only(hardened: LocalServer) -> None:
    assert hardened.process is not None
    pids = [hardened.process.pid, *hardened.child_pids()]
    listening = _listening(pids)
    assert len(listening) >= 2, listening  # the gateway and DynamoDB Local (S3 is files, no port)
    assert [a for a in listening if not a.startswith("127.")] == [], listening


def test_the_backend_port_answers_only_the_service(hardened: LocalServer) -> None:
    """Any local process can find DynamoDB Local's port: without the key drawn at this start, sent
    to the port's own address, it gets 403 (another user, or a web page that scans loopback)."""
    assert hardened.process is not None
    gateway = f"127.0.0.1:{hardened.port}"
    backends = [a for a in _listening([hardened.process.pid, *hardened.child_pids()]) if a != gateway]
    assert len(backends) == 1, backends
    port = backends[0].rsplit(":", 1)[1]
    target = {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"}
    probe = LocalServer(hardened.data_dir, int(port))  # only for _raw's address
    for extra in ({}, {"Host": f"localhost:{port}"}, {"Host": "evil.example"}):
        status, body = _raw(probe, "POST", "/", "dynamodb", **target, **extra)
        assert status == 403, (extra, body)
    status, _ = _raw(probe, "OPTIONS", "/", "", Origin="http://evil.example")  # a CORS preflight
    assert status == 403


def test_backend_routes_are_closed_to_outside_callers(hardened: LocalServer) -> None:
    dynamodb = client_for(hardened, "dynamodb")
    with pytest.raises(ClientError) as error:
        dynamodb.scan(TableName="anything")
    assert _error_code(error) == "AccessDeniedException"
    assert "--debug-backends" in error.value.response["Error"]["Message"]
    stepfunctions = client_for(hardened, "stepfunctions")
    with pytest.raises(ClientError) as error:
        stepfunctions.list_state_machines()
    assert _error_code(error) == "AccessDeniedException"
    status, body = _raw(
        hardened,
        "POST",
        "/",
        service="",
        **{
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    assert status == 403 and "MissingAuthenticationTokenException" in body, body  # unsigned
    # The service's own handlers still reach Step Functions: CreateDataset starts a workflow.
    lookoutvision = client_for(hardened, "lookoutvision")
    project = f"handlers-{os.urandom(4).hex()}"
    client_for(hardened, "s3").create_bucket(Bucket=project)
    lookoutvision.create_project(ProjectName=project)
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": project, "Key": "missing.manifest"}}}
    created = lookoutvision.create_dataset(ProjectName=project, DatasetType="train", DatasetSource=source)
    assert created["DatasetMetadata"]["Status"] == "CREATE_IN_PROGRESS"


def test_a_network_host_needs_allow_remote(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "openlookout.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    result = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "--allow-remote" in result.stderr
    assert "listening" not in result.stdout


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    """16 slow downloads in flight at SIGTERM: each gets its whole body, new connections are refused."""
    server = LocalServer(tmp_path / "data", free_port())
    server.start()
    size, clients = 8 * 1024 * 1024, 16
    try:
        s3 = client_for(server, "s3")
        s3.create_bucket(Bucket="shutdown")
        s3.put_object(Bucket="shutdown", Key="big", Body=os.urandom(size))
        started = threading.Barrier(clients + 1)
        received: list[int | str] = []

        def slow_download() -> None:
            body = client_for(server, "s3").get_object(Bucket="shutdown", Key="big")["Body"]
            got = len(body.read(256 * 1024))
            started.wait()
            try:
                while chunk := body.read(512 * 1024):
                    got += len(chunk)
                    time.sleep(0.05)  # ~10 MB/s per client: a couple of seconds each
                received.append(got)
            except Exception as error:
                received.append(type(error).__name__)

        threads = [threading.Thread(target=slow_download) for _ in range(clients)]
        for thread in threads:
            thread.start()
        started.wait()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):  # no longer accepting
            http.client.HTTPConnection("127.0.0.1", server.port, timeout=5).connect()
        for thread in threads:
            thread.join(60)
        assert server.process.wait(30) == 0
        assert received == [size] * clients
    finally:
        server.kill()


def _abandon(server: LocalServer, request: bytes, read: int = 0) -> None:
    """Sends `request`, reads `read` bytes of the answer, and walks away: closes its side when it
    read nothing (an upload given up), else resets the connection (a download cut off)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(request)
        time.sleep(0.5)
        while read > 0:
            read -= len(connection.recv(min(read, 65536)) or b"x" * read)
        if read < 0 or request.startswith(b"GET"):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_an_idle_server_stops_at_once_after_abandoned_transfers(tmp_path: Path) -> None:
    """Issue 23: an idle server waited its whole grace on SIGTERM ("1 requests still running"): an
    upload the client gave up on left the S3 proxy waiting on s3rver for the rest of the body."""
    server = LocalServer(tmp_path / "data", free_port())
    server.start()
    try:
        s3 = client_for(server, "s3")
        s3.create_bucket(Bucket="abandoned")
        s3.put_object(Bucket="abandoned", Key="big", Body=os.urandom(16 * 1024 * 1024))
        endpoint, host = server.endpoint_url, f"127.0.0.1:{server.port}"
        for method, path, length in (("PUT", "/abandoned/k", 1_000_000), ("GET", "/abandoned/big", 0)):
            headers = signed_headers(
                method, endpoint + path, b"", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
            )
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + (
                f"Content-Length: {length}\r\n" if length else ""
            )
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "host") + "\r\n"
            _abandon(server, head.encode() + b"x" * (length // 10), read=0 if length else 1_000_000)
        time.sleep(1)
        assert server.stop() < 5
        assert "still running" not in server.log_tail()
    finally:
        server.kill()
