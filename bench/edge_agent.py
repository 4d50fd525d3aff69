"""The edge agent's overhead: DetectAnomalies p50 over its Unix socket vs Detector.detect in-process.

Trains a small model on DATA (MVTec layout) unless --model names one (a folder with model.onnx and
model.json), starts `python -m openlookout.edge` on a temporary socket, and times the same 512 x 512
RGB bitmap, interleaved: Detector.detect in this process (the graph alone, with its pre- and
post-processing), the agent with the bitmap in the message, and with it in POSIX shared memory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from openlookout.edge import edge_agent_pb2 as pb
from openlookout.edge import edge_agent_pb2_grpc as pb_grpc
from openlookout.edge.agent import DETECT_MS_METADATA
from openlookout.ml.serving.inference import Detector

TRAIN = (
    "from openlookout.ml.patchcore.training import train; import sys, pathlib; "
    "d = pathlib.Path(sys.argv[1]); "
    "train(sorted((d / 'train' / 'good').glob('*.*'))[: int(sys.argv[3])]).export(sys.argv[2])"
)


def train_model(data: Path, out: Path, images: int) -> Path:
    # In a child process: torch's idle worker threads would otherwise slow the timed graph runs here.
    subprocess.run([sys.executable, "-c", TRAIN, str(data), str(out), str(images)], check=True)
    return out


def p50s_ms(calls: dict[str, Callable[[], object]], runs: int, block: int = 5) -> dict[str, float]:
    """Median milliseconds of each call. The calls take turns in blocks of `block` runs, so that a busy
    machine slows all alike and onnxruntime's spinning threads of one process rarely overlap the other's."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, runs // block)):
        for name, call in calls.items():
            for _ in range(block):
                started = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


# A gRPC server whose one method only waits: what the transport costs around a call of a given length.
WAIT_SERVER = """
import sys, time
from concurrent import futures
import grpc
def wait(request, context):
    time.sleep(float(request.decode()))
    return b""
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
handler = grpc.unary_unary_rpc_method_handler(wait)
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("Wait", {"Wait": handler}),))
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
server.wait_for_termination()
"""


def transport_ms(socket_path: Path, wait_ms: float, runs: int) -> float:
    """p50 of a call's latency beyond the `wait_ms` its handler waits, on a server that does nothing else."""
    server = subprocess.Popen([sys.executable, "-c", WAIT_SERVER, str(socket_path)])
    try:
        channel = grpc.insecure_channel(f"unix://{socket_path}")
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary("/Wait/Wait")
        request = f"{wait_ms / 1000:.6f}".encode()
        call(request)
        extra = []
        for _ in range(runs):
            started = time.perf_counter()
            call(request)
            extra.append((time.perf_counter() - started) * 1000 - wait_ms)
        channel.close()
        return statistics.median(extra)
    finally:
        server.terminate()
        server.wait(timeout=20)


def paired_overhead_ms(call: Callable[[], tuple[object, object]], runs: int) -> tuple[float, float]:
    """(p50 latency, p50 of latency minus the agent's own Detector.detect time of the same call): the
    agent's overhead (transport, bitmap and mask handling), free of the machine's load swings."""
    call()
    latencies, overheads = [], []
    for _ in range(runs):
        started = time.perf_counter()
        _response, rpc = call()
        latency = (time.perf_counter() - started) * 1000
        detect_ms = float(dict(rpc.trailing_metadata())[DETECT_MS_METADATA])  # type: ignore[attr-defined]
        latencies.append(latency)
        overheads.append(latency - detect_ms)
    return statistics.median(latencies), statistics.median(overheads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/mvtec-bottle"))
    parser.add_argument("--model", type=Path, help="an exported model folder (else one is trained on --data)")
    parser.add_argument("--size", type=int, default=512, help="bitmap side in pixels")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--train-images", type=int, default=20)
    parser.add_argument(
        "--normal", action="store_true", help="a normal test image (default: an anomalous one)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="onnxruntime threads, in-process and in the agent alike"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        model = args.model or train_model(args.data, work / "models" / "bench", args.train_images)
        kind = (lambda p: p.parent.name == "good") if args.normal else (lambda p: p.parent.name != "good")
        source = sorted(p for p in (args.data / "test").glob("*/*.*") if kind(p))[0]
        image = Image.open(source).convert("RGB").resize((args.size, args.size))
        pixels = np.ascontiguousarray(np.asarray(image))

        detector = Detector.load(model, threads=args.threads)

        socket_path = work / "agent.sock"
        command = [sys.executable, "-m", "openlookout.edge", "--models", str(model.parent)]
        options = ["--socket", str(socket_path), "--start-all", "--threads", str(args.threads)]
        agent = subprocess.Popen([*command, *options])
        try:
            stub = pb_grpc.EdgeAgentStub(grpc.insecure_channel(f"unix://{socket_path}"))
            name = model.name
            while True:
                try:
                    described = stub.DescribeModel(pb.DescribeModelRequest(model_component=name))
                    if described.model_description.status == pb.RUNNING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
            size = args.size
            in_message = pb.DetectAnomaliesRequest(
                model_component=name, bitmap=pb.Bitmap(width=size, height=size, byte_data=pixels.tobytes())
            )
            # Image in and mask out through shared memory: the fast path L4V recommends.
            segment = shared_memory.SharedMemory(create=True, size=2 * pixels.nbytes)
            try:
                segment.buf[: pixels.nbytes] = pixels.tobytes()
                handle = pb.SharedMemoryHandle(name=segment.name, size=pixels.nbytes)
                bitmap = pb.Bitmap(width=size, height=size, shared_memory_handle=handle)
                mask = pb.SharedMemoryHandle(name=segment.name, size=pixels.nbytes, offset=pixels.nbytes)
                shared = pb.DetectAnomaliesRequest(
                    model_component=name,
                    bitmap=bitmap,
                    anomaly_mask_params=pb.AnomalyMaskParams(shared_memory_handle=mask),
                )
                p50 = p50s_ms(
                    {
                        "graph": lambda: detector.detect(pixels),
                        "message": lambda: stub.DetectAnomalies(in_message),
                        "shared": lambda: stub.DetectAnomalies(shared),
                    },
                    args.runs,
                )
                paired = {
                    "message": paired_overhead_ms(
                        lambda: stub.DetectAnomalies.with_call(in_message), args.runs
                    ),
                    "shared": paired_overhead_ms(lambda: stub.DetectAnomalies.with_call(shared), args.runs),
                }
            finally:
                segment.close()
                segment.unlink()
        finally:
            agent.terminate()
            agent.wait(timeout=20)
        transport = transport_ms(work / "wait.sock", p50["graph"], args.runs)
    verdict = "anomalous" if detector.detect(pixels).is_anomalous else "normal"
    print(
        f"\n{args.size} px RGB bitmap ({verdict} verdict), {args.threads} thread(s), p50 of {args.runs} runs:"
    )
    graph = p50["graph"]
    print(f"  Detector.detect in-process (the graph alone): {graph:7.1f} ms")
    for key, label in (("message", "in the message"), ("shared", "and mask in shared memory")):
        value, overhead = p50[key], paired[key][1]
        print(
            f"  edge agent, bitmap {label + ':':<31} {value:7.1f} ms  ({value / graph:.2f} x the graph; "
            f"agent overhead p50 {overhead:.1f} ms)"
        )
    print("  (overhead: each call's latency minus the agent's own Detector.detect time in that call)")
    print(
        f"  gRPC transport alone, a handler that only waits {graph:.0f} ms: {transport:.1f} ms over the wait"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
