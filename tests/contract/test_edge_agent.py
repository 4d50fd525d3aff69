"""The edge agent against a local attacker: shared-memory names and the Unix socket (issue 21, item 4).

A real agent process (`python -m openlookout.edge`) serves a small model trained here on generated
images, and a gRPC client generated from the .proto sends what a hostile process on the same
machine could: names that lead out of /dev/shm, symbolic links, a FIFO, segments too small for what
the handle claims. Files under a temporary folder stand in for the targets outside /dev/shm.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest

from tests.contract.test_packaging import _generated_client

ROOT = Path(__file__).resolve().parents[2]
SHM = Path("/dev/shm")
SIDE = 64  # the smallest bitmap the agent takes: each request is cheap
BITMAP_BYTES = SIDE * SIDE * 3
START_S = 60
RPC_TIMEOUT_S = 15  # a worker held by a FIFO shows as DEADLINE_EXCEEDED instead of a hang

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="needs Linux's /dev/shm")


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_agent(models: Path, socket_path: Path, *extra: str, wait: bool = True) -> Agent:
    """The agent as the Greengrass recipe runs it; with `wait`, until it listens or has exited."""
    log = socket_path.parent / f"agent-{uuid.uuid4().hex[:6]}.log"
    command = [
        sys.executable,
        "-m",
        "openlookout.edge",
        "--models",
        str(models),
        "--socket",
        str(socket_path),
    ]
    with open(log, "wb") as output:
        process = subprocess.Popen([*command, *extra], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    agent = Agent(process, socket_path, log)
    deadline = time.monotonic() + START_S
    while wait and "edge agent listening on" not in agent.output() and process.poll() is None:
        assert time.monotonic() < deadline, f"the edge agent did not start: {agent.output()}"
        time.sleep(0.1)
    return agent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return _generated_client(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (small) model, trained on generated textures: the agent must run it to reach the masks."""
    from openlookout.ml.patchcore.config import EngineConfig
    from openlookout.ml.patchcore.training import train
    from tests.unit.ml.conftest import png_bytes, texture

    models = tmp_path_factory.mktemp("models")
    config = EngineConfig(input_size=SIDE, bank_size=256, coreset_ratio=0.25, batch_size=8)
    train([png_bytes(texture(i, (SIDE, SIDE))) for i in range(8)], config=config).export(models / "tiny")
    return models


@pytest.fixture(scope="module")
def running(
    model_dir: Path, client: tuple[ModuleType, ModuleType], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, ModuleType, Agent]]:
    """The agent with the model RUNNING, and a stub."""
    pb, pb_grpc = client
    agent = start_agent(model_dir, tmp_path_factory.mktemp("agent") / "agent.sock", "--start-all")
    try:
        assert agent.process.poll() is None, agent.output()
        with grpc.insecure_channel(f"unix://{agent.socket}") as channel:
            stub = pb_grpc.EdgeAgentStub(channel)
            deadline = time.monotonic() + START_S
            while stub.DescribeModel(
                pb.DescribeModelRequest(model_component="tiny")
            ).model_description.status != (pb.RUNNING):
                assert time.monotonic() < deadline, agent.output()
                time.sleep(0.2)
            yield stub, pb, agent
    finally:
        agent.stop()


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A fresh name in /dev/shm, removed afterwards whatever the test put there."""
    name = f"openlookout-test-{uuid.uuid4().hex[:10]}"
    yield name
    path = SHM / name
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()


def _pixels() -> bytes:
    return np.random.default_rng(7).integers(0, 256, BITMAP_BYTES, dtype=np.uint8).tobytes()


def _detect(stub: Any, pb: ModuleType, bitmap_name: str | None = None, mask_name: str | None = None,
            mask_size: int = BITMAP_BYTES, offset: int = 0) -> Any:  # fmt: skip
    if bitmap_name is None:
        bitmap = pb.Bitmap(width=SIDE, height=SIDE, byte_data=_pixels())
    else:
        handle = pb.SharedMemoryHandle(name=bitmap_name, size=BITMAP_BYTES, offset=offset)
        bitmap = pb.Bitmap(width=SIDE, height=SIDE, shared_memory_handle=handle)
    request = pb.DetectAnomaliesRequest(model_component="tiny", bitmap=bitmap)
    if mask_name is not None:
        handle = pb.SharedMemoryHandle(name=mask_name, size=mask_size, offset=offset)
        request.anomaly_mask_params.shared_memory_handle.CopyFrom(handle)
    return stub.DetectAnomalies(request, timeout=RPC_TIMEOUT_S)


def _refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    return excinfo.value.code(), excinfo.value.details()  # type: ignore[attr-defined]


def _victim(folder: Path) -> tuple[Path, bytes]:
    """A file outside /dev/shm holding what would pass for a bitmap (and be overwritten by a mask)."""
    content = bytes(range(256)) * (BITMAP_BYTES // 256)
    path = folder / "victim.bin"
    path.write_bytes(content)
    return path, content


# ------------------------------------------------------------------ shared memory


def test_names_that_lead_out_of_dev_shm_touch_nothing(
    running: tuple[Any, ModuleType, Agent], tmp_path: Path
) -> None:
    stub, pb, _ = running
    victim, content = _victim(tmp_path)
    outside = os.path.relpath(victim, SHM)  # ../tmp/...: the agent once joined names onto /dev/shm/
    # Only files of this test as targets: against a broken agent run as root, a system file would be lost.
    deeper = "../" * 8 + str(victim).lstrip("/")
    for name in (outside, f"/{outside}", deeper, "a/b", "..", ".", "", "x" * 256, "bad\0name"):
        for where in ("bitmap", "mask"):
            arguments = {"bitmap_name": name} if where == "bitmap" else {"mask_name": name}
            code, message = _refusal(lambda a=arguments: _detect(stub, pb, **a))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, where, message)
            assert "is not a POSIX shared memory name" in message, (name, where, message)
    assert victim.read_bytes() == content


def test_a_symbolic_link_in_dev_shm_is_not_followed(
    running: tuple[Any, ModuleType, Agent], tmp_path: Path, shm_name: str
) -> None:
    stub, pb, _ = running
    victim, content = _victim(tmp_path)
    (SHM / shm_name).symlink_to(victim)
    for arguments in ({"bitmap_name": shm_name}, {"mask_name": shm_name}):
        code, message = _refusal(lambda a=arguments: _detect(stub, pb, **a))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message == f"The shared memory {shm_name} is not a shared memory segment."
    assert victim.read_bytes() == content


def test_a_fifo_or_a_folder_is_refused_at_once(running: tuple[Any, ModuleType, Agent], shm_name: str) -> None:
    stub, pb, _ = running
    fifo = SHM / shm_name
    os.mkfifo(fifo, 0o600)
    try:
        for arguments in ({"bitmap_name": shm_name}, {"mask_name": shm_name}):
            started = time.monotonic()
            code, message = _refusal(lambda a=arguments: _detect(stub, pb, **a))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, message  # not DEADLINE_EXCEEDED
            assert message == f"The shared memory {shm_name} is not a shared memory segment."
            assert time.monotonic() - started < RPC_TIMEOUT_S
    finally:
        # An agent blocked in open() on the FIFO is released by a writer that comes and goes.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        fifo.unlink()
    fifo.mkdir()
    code, message = _refusal(lambda: _detect(stub, pb, bitmap_name=shm_name))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a shared memory segment" in message


def test_sizes_are_checked_before_a_byte_is_read_or_written(
    running: tuple[Any, ModuleType, Agent], shm_name: str
) -> None:
    stub, pb, _ = running
    small = SHM / shm_name
    small.write_bytes(b"\x01" * 100)
    code, message = _refusal(lambda: _detect(stub, pb, bitmap_name=shm_name))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == (
        f"The shared memory {shm_name} has 100 bytes; offset 0 plus {BITMAP_BYTES} bytes does not fit in it."
    )
    # The handle claims room the segment does not have: the file must not grow (it once did).
    code, message = _refusal(lambda: _detect(stub, pb, mask_name=shm_name))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "has 100 bytes" in message
    assert small.read_bytes() == b"\x01" * 100
    small.write_bytes(b"\x01" * BITMAP_BYTES)  # the right size, but not from offset 16 on
    code, message = _refusal(lambda: _detect(stub, pb, mask_name=shm_name, offset=16))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "offset 16 plus" in message
    assert small.read_bytes() == b"\x01" * BITMAP_BYTES
    code, message = _refusal(lambda: _detect(stub, pb, mask_name=shm_name, mask_size=100))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == f"The mask's shared memory has 100 bytes; the mask needs {BITMAP_BYTES}."
    code, message = _refusal(lambda: _detect(stub, pb, bitmap_name="openlookout-test-no-such-segment"))
    assert message == "The shared memory openlookout-test-no-such-segment does not exist."


def test_posix_names_with_or_without_the_slash_still_work(running: tuple[Any, ModuleType, Agent]) -> None:
    stub, pb, _ = running
    expected = _detect(stub, pb).detect_anomaly_result  # the same pixels, in the message
    image = shared_memory.SharedMemory(create=True, size=BITMAP_BYTES + 16)
    mask = shared_memory.SharedMemory(create=True, size=BITMAP_BYTES + 16)
    try:
        image.buf[16 : 16 + BITMAP_BYTES] = _pixels()
        for image_name, mask_name in ((image.name, mask.name), (f"/{image.name}", f"/{mask.name}")):
            mask.buf[:] = bytes(len(mask.buf))
            answer = _detect(stub, pb, bitmap_name=image_name, mask_name=mask_name, offset=16)
            result = answer.detect_anomaly_result
            assert (result.is_anomalous, result.confidence) == (expected.is_anomalous, expected.confidence)
            assert result.anomaly_mask.shared_memory_handle.name == mask_name
            assert bytes(mask.buf[16 : 16 + BITMAP_BYTES]) == expected.anomaly_mask.byte_data
    finally:
        for segment in (image, mask):
            segment.close()
            segment.unlink()
    assert stub.ListModels(pb.ListModelsRequest()).models[0].status == pb.RUNNING  # still up


# ------------------------------------------------------------------ the socket


@pytest.fixture
def unstarted_models(tmp_path: Path) -> Path:
    """A model folder the agent lists without loading it (no --start-all): enough to test the socket."""
    (tmp_path / "models" / "idle").mkdir(parents=True)
    (tmp_path / "models" / "idle" / "model.json").write_text("{}")
    return tmp_path / "models"


def _lists(client: tuple[ModuleType, ModuleType], socket_path: Path) -> list[str]:
    pb, pb_grpc = client
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        models = pb_grpc.EdgeAgentStub(channel).ListModels(pb.ListModelsRequest(), timeout=RPC_TIMEOUT_S)
    return [m.model_component for m in models.models]


def _refused_start(models: Path, socket_path: Path) -> str:
    """Starts an agent that must stop at once with an error; its output."""
    agent = start_agent(models, socket_path, wait=False)
    try:
        code = agent.process.wait(timeout=START_S)
    except subprocess.TimeoutExpired:
        agent.stop()
        pytest.fail(f"the agent took the socket path {socket_path}: {agent.output()}")
    assert code == 1, agent.output()
    return agent.output()


def test_a_path_that_is_not_a_socket_is_never_removed(unstarted_models: Path, tmp_path: Path) -> None:
    regular = tmp_path / "precious.txt"
    regular.write_text("keep me")
    assert f"{regular} exists and is not a socket" in _refused_start(unstarted_models, regular)
    assert regular.read_text() == "keep me"
    link = tmp_path / "link.sock"
    link.symlink_to(regular)
    assert "is not a socket" in _refused_start(unstarted_models, link)
    assert link.is_symlink() and regular.read_text() == "keep me"


def test_a_live_socket_is_not_taken_over_and_a_stale_one_is_replaced(
    unstarted_models: Path, client: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    socket_path = tmp_path / "agent.sock"
    first = start_agent(unstarted_models, socket_path)
    try:
        assert _lists(client, socket_path) == ["idle"]
        assert "is a live socket" in _refused_start(unstarted_models, socket_path)
        assert first.process.poll() is None and _lists(client, socket_path) == ["idle"]  # still the first's
    finally:
        first.stop()
    assert not socket_path.exists()  # an agent removes its own socket when it stops
    import socket

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))  # a socket file nobody listens on, as a killed agent leaves it
    stale.close()
    second = start_agent(unstarted_models, socket_path)
    try:
        assert _lists(client, socket_path) == ["idle"]
    finally:
        second.stop()


@pytest.mark.parametrize(("extra", "mode"), [((), 0o600), (("--socket-mode", "660"), 0o660)])
def test_the_socket_is_private_unless_told_otherwise(
    unstarted_models: Path, tmp_path: Path, extra: tuple[str, ...], mode: int
) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = start_agent(unstarted_models, socket_path, *extra)
    try:
        assert agent.process.poll() is None, agent.output()
        assert stat.S_IMODE(socket_path.stat().st_mode) == mode
    finally:
        agent.stop()


def test_a_bad_socket_mode_is_refused(unstarted_models: Path, tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "openlookout.edge", "--models", str(unstarted_models), "--socket-mode", "999"],
        cwd=ROOT, capture_output=True, text=True, timeout=START_S,
    )  # fmt: skip
    assert ran.returncode == 2 and "expected an octal mode" in ran.stderr
