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
from openlookout.ml.inference import Detector

TRAIN = (
    "from openlookout.ml.training import train; import sys, pathlib; d = pathlib.Path(sys.argv[1]); "
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/mvtec-bottle"))
    parser.add_argument("--model", type=Path, help="an exported model folder (else one is trained on --data)")
    parser.add_argument("--size", type=int, default=512, help="bitmap side in pixels")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--train-images", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        model = args.model or train_model(args.data, work / "models" / "bench", args.train_images)
        anomalous = sorted(p for p in (args.data / "test").glob("*/*.*") if p.parent.name != "good")[0]
        image = Image.open(anomalous).convert("RGB").resize((args.size, args.size))
        pixels = np.ascontiguousarray(np.asarray(image))

        detector = Detector.load(model)

        socket_path = work / "agent.sock"
        command = [sys.executable, "-m", "openlookout.edge", "--models", str(model.parent)]
        agent = subprocess.Popen([*command, "--socket", str(socket_path), "--start-all"])
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
            segment = shared_memory.SharedMemory(create=True, size=pixels.nbytes)
            try:
                segment.buf[: pixels.nbytes] = pixels.tobytes()
                handle = pb.SharedMemoryHandle(name=segment.name, size=pixels.nbytes)
                bitmap = pb.Bitmap(width=size, height=size, shared_memory_handle=handle)
                shared = pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)
                p50 = p50s_ms(
                    {
                        "graph": lambda: detector.detect(pixels),
                        "message": lambda: stub.DetectAnomalies(in_message),
                        "shared": lambda: stub.DetectAnomalies(shared),
                    },
                    args.runs,
                )
            finally:
                segment.close()
                segment.unlink()
        finally:
            agent.terminate()
            agent.wait(timeout=20)
    verdict = "anomalous" if detector.detect(pixels).is_anomalous else "normal"
    print(f"\n{args.size} px RGB bitmap ({verdict} verdict), p50 of {args.runs} runs:")
    graph = p50["graph"]
    print(f"  Detector.detect in-process (the graph alone): {graph:7.1f} ms")
    for label, value in (("in the message", p50["message"]), ("in shared memory", p50["shared"])):
        print(f"  edge agent, bitmap {label + ':':<27} {value:7.1f} ms  (+{value - graph:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
