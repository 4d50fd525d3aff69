"""Red-team cases of issue 21 (items 4-6) for `make reliability`: the edge agent, `openlookout report`
and packaging, each attacked as a process on the same machine would, one function per attack.

    .venv/bin/python bench/redteam_edge.py            # the edge agent's cases, on a small model
    .venv/bin/python bench/redteam_edge.py --json bench/results/redteam-edge.json

Every function returns an `Attack`: what was attempted, the files outside the allowed folder that it
created, changed or removed, and whether the defence held. The edge cases share one `EdgeRig` (a
real agent process with a model RUNNING, on a socket in a temporary folder, and victim files in
`outside/`); `report_key_escape` and `packaging_clash` need a running `openlookout serve` with a
trained model (bench/reliability.py has one).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openlookout.edge import edge_agent_pb2 as pb  # noqa: E402
from openlookout.edge import edge_agent_pb2_grpc as pb_grpc  # noqa: E402

SHM = Path("/dev/shm")
SIDE = 64
BITMAP_BYTES = SIDE * SIDE * 3
RPC_TIMEOUT_S = 10
START_S = 90
TRAIN = (
    "import sys; from openlookout.ml.patchcore.config import EngineConfig; "
    "from openlookout.ml.patchcore.training import train; "
    "from tests.unit.ml.conftest import png_bytes, texture; "
    f"config = EngineConfig(input_size={SIDE}, bank_size=256, coreset_ratio=0.25, batch_size=8); "
    f"train([png_bytes(texture(i, ({SIDE}, {SIDE}))) for i in range(8)], config=config).export(sys.argv[1])"
)


@dataclass
class Attack:
    name: str
    attempted: str
    touched_outside: list[str] = field(default_factory=list)
    passed: bool = False
    detail: str = ""

    def line(self) -> str:
        touched = f" touched={self.touched_outside}" if self.touched_outside else ""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name:<28} {self.detail}{touched}"


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry under `folder`: its mode and a digest of what it holds (a link's target)."""
    found: dict[str, tuple[int, str]] = {}
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            digest = os.readlink(path)
        elif stat.S_ISREG(mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = ""
        found[str(path)] = (mode, digest)
    return found


def changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


# ------------------------------------------------------------------ the edge agent


@dataclass
class EdgeRig:
    work: Path
    models: Path
    outside: Path  # the victims: nothing here may change
    socket: Path
    process: subprocess.Popen[bytes]
    stub: Any

    def victim(self, name: str = "victim.bin") -> Path:
        path = self.outside / name
        path.write_bytes(bytes(range(256)) * (BITMAP_BYTES // 256))
        return path


def start_agent(models: Path, socket_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "openlookout.edge",
        "--models",
        str(models),
        "--socket",
        str(socket_path),
    ]
    with open(models.parent / f"agent-{uuid.uuid4().hex[:6]}.log", "wb") as log:  # beside, not in, outside/
        return subprocess.Popen([*command, *extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _wait_running(stub: Any, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(grpc.RpcError):
            described = stub.DescribeModel(pb.DescribeModelRequest(model_component="tiny"), timeout=5)
            if described.model_description.status == pb.RUNNING:
                return
        time.sleep(0.2)
    raise RuntimeError("the edge agent did not start its model")


@contextlib.contextmanager
def edge_rig(model_dir: Path | None = None) -> Iterator[EdgeRig]:
    """A running agent (the model in `model_dir`, or a small one trained here) and a victims' folder."""
    with tempfile.TemporaryDirectory(prefix="openlookout-redteam-edge-") as tmp:
        work = Path(tmp)
        models, outside = work / "models", work / "outside"
        outside.mkdir()
        if model_dir is None:
            subprocess.run([sys.executable, "-c", TRAIN, str(models / "tiny")], cwd=ROOT, check=True)
        else:
            models.mkdir()
            (models / "tiny").symlink_to(model_dir.resolve())
        socket_path = work / "agent.sock"
        process = start_agent(models, socket_path, "--start-all")
        try:
            with grpc.insecure_channel(f"unix://{socket_path}") as channel:
                stub = pb_grpc.EdgeAgentStub(channel)
                _wait_running(stub, process)
                yield EdgeRig(work, models, outside, socket_path, process, stub)
        finally:
            process.terminate()
            process.wait(timeout=20)


def _detect(rig: EdgeRig, bitmap_name: str | None = None, mask_name: str | None = None) -> str:
    """'OK' or the gRPC status code's name."""
    if bitmap_name is None:
        bitmap = pb.Bitmap(width=SIDE, height=SIDE, byte_data=np.full(BITMAP_BYTES, 90, np.uint8).tobytes())
    else:
        handle = pb.SharedMemoryHandle(name=bitmap_name, size=BITMAP_BYTES)
        bitmap = pb.Bitmap(width=SIDE, height=SIDE, shared_memory_handle=handle)
    request = pb.DetectAnomaliesRequest(model_component="tiny", bitmap=bitmap)
    if mask_name is not None:
        request.anomaly_mask_params.shared_memory_handle.name = mask_name
        request.anomaly_mask_params.shared_memory_handle.size = BITMAP_BYTES
    try:
        rig.stub.DetectAnomalies(request, timeout=RPC_TIMEOUT_S)
        return "OK"
    except grpc.RpcError as error:
        return str(error.code().name)  # type: ignore[attr-defined]


def _edge_attack(name: str, attempted: str, rig: EdgeRig, attempt: Callable[[], list[str]]) -> Attack:
    """Runs `attempt` (it returns the answers it got); passes when each is INVALID_ARGUMENT and nothing
    outside changed."""
    before = snapshot(rig.outside)
    answers = attempt()
    touched = changed(before, snapshot(rig.outside))
    passed = not touched and answers == ["INVALID_ARGUMENT"] * len(answers)
    return Attack(name, attempted, touched, passed, f"answers={','.join(answers)}")


def shm_name_escape(rig: EdgeRig) -> Attack:
    victim = rig.victim()
    relative = os.path.relpath(victim, SHM)
    # Only the rig's own victims as targets: against a broken agent run as root, a system file is lost.
    names = [relative, f"/{relative}", "../" * 8 + str(victim).lstrip("/")]
    return _edge_attack(
        "edge: shm name ../",
        f"read and overwrite {victim} through shared-memory names {names}",
        rig,
        lambda: [_detect(rig, bitmap_name=n) for n in names] + [_detect(rig, mask_name=n) for n in names],
    )


@contextlib.contextmanager
def _shm_entry(make: Callable[[Path], None]) -> Iterator[str]:
    name = f"openlookout-redteam-{uuid.uuid4().hex[:10]}"
    path = SHM / name
    make(path)
    try:
        yield name
    finally:
        with contextlib.suppress(OSError):  # releases an agent blocked on a FIFO, if one is
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


def shm_symlink(rig: EdgeRig) -> Attack:
    victim = rig.victim()
    with _shm_entry(lambda path: path.symlink_to(victim)) as name:
        return _edge_attack(
            "edge: shm symbolic link",
            f"/dev/shm/{name} -> {victim}, as the bitmap and as the mask",
            rig,
            lambda: [_detect(rig, bitmap_name=name), _detect(rig, mask_name=name)],
        )


def shm_fifo(rig: EdgeRig) -> Attack:
    with _shm_entry(lambda path: os.mkfifo(path, 0o600)) as name:
        return _edge_attack(
            "edge: shm FIFO",
            f"a FIFO /dev/shm/{name} as the bitmap and the mask (a worker blocked: DEADLINE_EXCEEDED)",
            rig,
            lambda: [_detect(rig, bitmap_name=name), _detect(rig, mask_name=name)],
        )


def shm_grow(rig: EdgeRig) -> Attack:
    with _shm_entry(lambda path: path.write_bytes(b"\x01" * 100)) as name:
        before = (SHM / name).read_bytes()
        attack = _edge_attack(
            "edge: shm smaller than its handle",
            f"a 100-byte segment named as a {BITMAP_BYTES}-byte bitmap and mask",
            rig,
            lambda: [_detect(rig, bitmap_name=name), _detect(rig, mask_name=name)],
        )
        grown = (SHM / name).read_bytes() != before
    attack.passed &= not grown
    attack.detail += " grown" if grown else ""
    return attack


def _refused_start(rig: EdgeRig, socket_path: Path) -> tuple[bool, str]:
    """Whether an agent on `socket_path` stops at once with an error (else it is stopped here)."""
    process = start_agent(rig.models, socket_path)
    try:
        return process.wait(timeout=START_S) == 1, f"exit={process.returncode}"
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=20)
        return False, "it started"


def socket_on_a_file(rig: EdgeRig) -> Attack:
    victim = rig.victim("precious.txt")
    before = snapshot(rig.outside)
    refused, detail = _refused_start(rig, victim)
    touched = changed(before, snapshot(rig.outside))
    return Attack("edge: --socket on a file", f"--socket {victim}", touched, refused and not touched, detail)


def socket_takeover(rig: EdgeRig) -> Attack:
    refused, detail = _refused_start(rig, rig.socket)
    try:
        rig.stub.ListModels(pb.ListModelsRequest(), timeout=RPC_TIMEOUT_S)
        still = True
    except grpc.RpcError:
        still = False
    passed = refused and still and rig.process.poll() is None
    return Attack("edge: live socket takeover", f"a second agent on {rig.socket}", [], passed, detail)


def socket_private(rig: EdgeRig) -> Attack:
    try:
        mode = stat.S_IMODE(rig.socket.stat().st_mode)
    except FileNotFoundError:
        return Attack("edge: socket permissions", "the socket's permissions", [], False, "the socket is gone")
    attempted = "the socket's permissions: no other user may connect"
    return Attack("edge: socket permissions", attempted, [], mode == 0o600, f"mode={mode:o}")


EDGE_ATTACKS: tuple[Callable[[EdgeRig], Attack], ...] = (
    shm_name_escape,
    shm_symlink,
    shm_fifo,
    shm_grow,
    socket_private,
    socket_on_a_file,
    socket_takeover,  # last: where it succeeds, the rig's socket is another agent's
)


# ------------------------------------------------------------------ the CLI and packaging (need a service)


def report_key_escape(endpoint_url: str, project: str, version: str, work: Path) -> Attack:
    """`openlookout report` on a model whose report folder holds keys that lead out. The local S3
    refuses such keys, so they are put in a moto S3 server (as AWS S3 stores them) that stands in
    for the report's bucket, while DescribeModel goes to the service."""
    import boto3
    from moto.server import ThreadedMotoServer

    from openlookout.cli.connection import Clients
    from openlookout.cli.output import run_command
    from openlookout.cli.report import download_report, report_prefix

    clients = Clients(endpoint_url, "us-east-1")
    location = clients.lookoutvision.describe_model(ProjectName=project, ModelVersion=version)[
        "ModelDescription"
    ]["EvaluationResult"]
    prefix, out = report_prefix(location["Key"]), work / "report"
    escapes = ["../parent.txt", "a/../../up.txt", f"{work}/absolute.txt", "..\\back.txt", "sub//x.txt"]
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    before = snapshot(work)
    original = Clients.of
    try:
        keys = {"aws_access_key_id": "redteam", "aws_secret_access_key": "redteam"}
        clients.s3 = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", **keys
        )
        clients.s3.create_bucket(Bucket=location["Bucket"])
        for name in ["index.html", *escapes]:
            clients.s3.put_object(Bucket=location["Bucket"], Key=prefix + name, Body=b"x")
        Clients.of = classmethod(lambda cls, args: clients)  # type: ignore[method-assign, assignment]
        arguments = argparse.Namespace(project=project, version=version, directory=out)
        arguments.endpoint_url, arguments.region = endpoint_url, None
        code = run_command(download_report, arguments)
    finally:
        Clients.of = original  # type: ignore[method-assign]
        server.stop()
    touched = [p for p in changed(before, snapshot(work)) if not Path(p).is_relative_to(out)]
    return Attack("cli: report keys ../", f"report keys {escapes}", touched, code == 0 and not touched)


def packaging_clash(lookoutvision: Any, s3: Any, project: str, version: str, bucket: str) -> Attack:
    """A second packaging job for a published component's name and version must change none of its files."""
    configuration = {
        "Greengrass": {
            "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"},
            "S3OutputLocation": {"Bucket": bucket, "Prefix": "redteam-edge/"},
            "ComponentName": f"com.example.redteam{uuid.uuid4().hex[:6]}",
        }
    }

    def job() -> str:
        name = lookoutvision.start_model_packaging_job(
            ProjectName=project, ModelVersion=version, Configuration=configuration
        )["JobName"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = lookoutvision.describe_model_packaging_job(ProjectName=project, JobName=name)[
                "ModelPackagingDescription"
            ]["Status"]
            if status in ("SUCCEEDED", "FAILED"):
                return str(status)
            time.sleep(1)
        return "TIMED_OUT"

    def files() -> dict[str, str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="redteam-edge/").get("Contents", [])
        return {o["Key"]: o["ETag"] + str(o["LastModified"]) for o in listed}

    first = job()
    published = files()
    second = job()
    touched = sorted(k for k in published.keys() | files().keys() if published.get(k) != files().get(k))
    passed = first == "SUCCEEDED" and second == "FAILED" and not touched
    return Attack("packaging: version clash", "a second job for a published version", touched, passed,
                  f"first={first} second={second}")  # fmt: skip


# ------------------------------------------------------------------ on its own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, help="a folder with model.onnx + model.json (else one is trained)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: list[Attack] = []
    with edge_rig(args.model) as rig:
        for attack in EDGE_ATTACKS:
            results.append(attack(rig))
            print(results[-1].line(), flush=True)
    touched = sum(len(r.touched_outside) for r in results)
    failed = sum(not r.passed for r in results)
    print(f"{'PASS' if not (touched or failed) else 'FAIL'} {'edge totals':<28} "
          f"attacks={len(results)} failed={failed} files_touched_outside={touched}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 1 if touched or failed else 0


if __name__ == "__main__":
    sys.exit(main())
