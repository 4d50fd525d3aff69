"""`openlookout edge-agent`: Lookout for Vision's EdgeAgent gRPC API on a Unix socket.

It serves every model found under --models (an unpacked model component, or a folder holding
model.onnx + model.json) through `openlookout.ml.serving.inference.Detector`, the same preprocessing and
graph as the cloud's DetectAnomalies. Needs grpcio, protobuf, onnxruntime, numpy and Pillow only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from openlookout.edge import edge_agent_pb2 as pb
from openlookout.edge import edge_agent_pb2_grpc as pb_grpc
from openlookout.edge import shared_memory, socket_path
from openlookout.edge.errors import AgentError
from openlookout.ml.serving.inference import DetectionResult, Detector

log = logging.getLogger("openlookout.edge")

COMPONENT_FILE = "component.json"  # written by the packaging job next to model.json
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_MESSAGE = MAX_SIDE * MAX_SIDE * 3 + 1024 * 1024  # the largest bitmap, in the message, and some room
DETECT_MS_METADATA = "openlookout-detect-ms"  # trailing metadata: Detector.detect's milliseconds


@dataclass
class EdgeModel:
    """One deployed model and its device state (STOPPED, STARTING, RUNNING, FAILED, STOPPING)."""

    component: str
    directory: Path
    model_arn: str = ""
    status: Any = pb.STOPPED  # a pb.ModelStatus value
    message: str = "The model is stopped."
    detector: Detector | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def discover(models_dir: Path) -> dict[str, EdgeModel]:
    """Every folder under models_dir that holds a model.json, by component name (else folder name)."""
    found: dict[str, EdgeModel] = {}
    for manifest in sorted(models_dir.rglob("model.json")):
        directory = manifest.parent
        meta: dict[str, Any] = {}
        for candidate in (directory / COMPONENT_FILE, directory.parent / COMPONENT_FILE):
            if candidate.is_file():
                meta = json.loads(candidate.read_text())
                break
        name = str(meta.get("ComponentName") or directory.name)
        if name in found:
            raise ValueError(f"two models under {models_dir} are both named {name}")
        found[name] = EdgeModel(name, directory, model_arn=str(meta.get("ModelArn") or ""))
    return found


def bitmap_pixels(bitmap: Any) -> np.ndarray:
    """The request's RGB888 bitmap as an (H, W, 3) uint8 array; INVALID_ARGUMENT when it is wrong."""
    width, height = bitmap.width, bitmap.height
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"The bitmap is {width}x{height} pixels; each side must be {MIN_SIDE} to {MAX_SIDE} pixels.",
        )
    expected = width * height * 3
    kind = bitmap.WhichOneof("data")
    if kind == "byte_data":
        data = bitmap.byte_data
        if len(data) != expected:
            raise AgentError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The bitmap has {len(data)} bytes; {width}x{height} RGB888 needs {expected}.",
            )
    elif kind == "shared_memory_handle":
        data = shared_memory.read_bitmap(bitmap.shared_memory_handle, expected)
    else:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT, "The bitmap has neither byte_data nor a shared memory handle."
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def _write_mask(result: DetectionResult, bitmap: Any, target: shared_memory.MaskTarget | None) -> None:
    """The anomaly mask as an RGB888 bitmap, in the message or in the caller's (checked) shared memory."""
    rgb = result.mask_rgb888()  # coloured straight from the class ids: no PNG is encoded or decoded
    bitmap.width, bitmap.height = result.width, result.height
    if target is None:
        bitmap.byte_data = rgb
        return
    target.write(rgb)
    written = bitmap.shared_memory_handle
    written.name, written.size, written.offset = target.name, len(rgb), target.offset


def to_response(
    result: DetectionResult, detector: Detector, mask_target: shared_memory.MaskTarget | None = None
) -> Any:
    """The DetectAnomaliesResponse, filled in place: protobuf copies a message passed to a constructor,
    and a copy of the mask in the message costs as much as colouring it."""
    response = pb.DetectAnomaliesResponse()
    out = response.detect_anomaly_result
    out.is_anomalous, out.confidence = result.is_anomalous, result.confidence
    out.anomaly_score = result.anomaly_score
    calibration = detector.calibration
    out.anomaly_threshold = float(calibration.probability(calibration.threshold))
    for entry in result.anomalies:
        anomaly = out.anomalies.add(name=entry["Name"])
        anomaly.pixel_anomaly.total_percentage_area = entry["PixelAnomaly"]["TotalPercentageArea"]
        anomaly.pixel_anomaly.hex_color = entry["PixelAnomaly"]["Color"]
    _write_mask(result, out.anomaly_mask, mask_target)
    return response


class EdgeAgentService(pb_grpc.EdgeAgentServicer):
    def __init__(
        self,
        models: dict[str, EdgeModel],
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
    ) -> None:
        self.models = models
        self.providers = list(providers)
        self.threads = threads

    # ---------------------------------------------------------------- helpers
    def _model(self, name: str) -> EdgeModel:
        model = self.models.get(name)
        if model is None:
            raise AgentError(grpc.StatusCode.NOT_FOUND, f"No model component named {name!r} is deployed.")
        return model

    def _load(self, model: EdgeModel) -> None:
        """STARTING -> RUNNING, or FAILED with the reason (runs on its own thread)."""
        try:
            detector = Detector.load(model.directory, threads=self.threads, providers=self.providers)
            with model.lock:
                model.detector, model.status, model.message = detector, pb.RUNNING, "The model is running."
        except Exception as error:  # any load failure is the model's state, not the agent's
            log.exception("model %s failed to start", model.component)
            with model.lock:
                model.status, model.message = pb.FAILED, f"The model could not be loaded: {error}"

    def start(self, name: str, wait: bool = False) -> Any:
        model = self._model(name)
        with model.lock:
            if model.status not in (pb.STOPPED, pb.FAILED):
                raise AgentError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The model {name} is {pb.ModelStatus.Name(model.status)}; only a STOPPED or FAILED "
                    "model can be started.",
                )
            model.status, model.message = pb.STARTING, "The model is starting."
        loader = threading.Thread(target=self._load, args=(model,), daemon=True)
        loader.start()
        if wait:
            loader.join()
        return pb.STARTING

    # ---------------------------------------------------------------- RPCs
    def DetectAnomalies(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self._detect(request, context))

    def _detect(self, request: Any, context: grpc.ServicerContext) -> Any:
        model = self._model(request.model_component)
        detector = model.detector
        if model.status != pb.RUNNING or detector is None:
            raise AgentError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The model {model.component} is {pb.ModelStatus.Name(model.status)}, not RUNNING. "
                "Start it with StartModel.",
            )
        if not request.HasField("bitmap"):
            raise AgentError(grpc.StatusCode.INVALID_ARGUMENT, "The request has no bitmap.")
        pixels = bitmap_pixels(request.bitmap)
        params = request.anomaly_mask_params if request.HasField("anomaly_mask_params") else None
        with contextlib.ExitStack() as stack:
            target = None
            if params is not None and params.HasField("shared_memory_handle"):
                # The mask is the input's size: its segment is checked before the model runs.
                target = stack.enter_context(
                    shared_memory.mask_target(params.shared_memory_handle, pixels.size)
                )
            started = time.perf_counter()
            result = detector.detect(pixels)
            # The graph's own time, so a client (bench/edge_agent.py) can tell the agent's overhead apart.
            detect_ms = (time.perf_counter() - started) * 1000
            context.set_trailing_metadata(((DETECT_MS_METADATA, f"{detect_ms:.3f}"),))
            return to_response(result, detector, target)

    def StartModel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: pb.StartModelResponse(status=self.start(request.model_component)))

    def StopModel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: pb.StopModelResponse(status=self._stop(request.model_component)))

    def _stop(self, name: str) -> Any:
        model = self._model(name)
        with model.lock:
            if model.status != pb.RUNNING:
                raise AgentError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The model {name} is {pb.ModelStatus.Name(model.status)}; only a RUNNING model can be "
                    "stopped.",
                )
            # Synchronous, as L4V's agent: the session is released before the answer.
            model.detector, model.status, model.message = None, pb.STOPPED, "The model is stopped."
        return pb.STOPPED

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(
            context, lambda: pb.ListModelsResponse(models=[_metadata(m) for m in self.models.values()])
        )

    def DescribeModel(self, request: Any, context: grpc.ServicerContext) -> Any:
        def describe() -> Any:
            model = self._model(request.model_component)
            return pb.DescribeModelResponse(
                model_description=pb.ModelDescription(
                    model_component=model.component,
                    lookout_vision_model_arn=model.model_arn,
                    status=model.status,
                    status_message=model.message,
                )
            )

        return _answer(context, describe)


def _metadata(model: EdgeModel) -> Any:
    return pb.ModelMetadata(
        model_component=model.component,
        lookout_vision_model_arn=model.model_arn,
        status=model.status,
        status_message=model.message,
    )


def _answer(context: grpc.ServicerContext, call: Any) -> Any:
    """Runs one RPC; refusals become their gRPC status, anything unexpected INTERNAL (the agent stays up)."""
    try:
        return call()
    except AgentError as error:
        context.abort(error.code, error.message)
    except Exception as error:
        log.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {error}")


@dataclass(frozen=True)
class AgentOptions:
    """What `openlookout edge-agent` was asked for (openlookout/edge/command.py)."""

    models_dir: Path
    socket: str = socket_path.DEFAULT_SOCKET
    socket_mode: int = socket_path.DEFAULT_SOCKET_MODE
    start_all: bool = False
    providers: Sequence[str] = ("CPUExecutionProvider",)
    workers: int = 4
    threads: int | None = None


@dataclass
class RunningAgent:
    server: grpc.Server
    service: EdgeAgentService
    socket: str
    bound: tuple[int, int]  # the socket file's (device, inode): only that file is removed at the end

    def stop(self, grace_s: float = 2.0) -> None:
        self.server.stop(grace=grace_s).wait()
        socket_path.release(self.socket, self.bound)


def _listen(server: grpc.Server, path: str, mode: int) -> tuple[int, int]:
    """Binds `path` (SocketPathError when another file or a live agent is there) with `mode`."""
    socket_path.claim(path)
    with socket_path.created_with_mode(mode):
        server.add_insecure_port(f"unix:{path}")
    os.chmod(path, mode)  # the umask only takes permissions away; this also grants what was asked
    return socket_path.identity(path)


def serve(options: AgentOptions) -> RunningAgent:
    models = discover(options.models_dir)
    if not models:
        raise ValueError(f"no model (a folder with model.json) under {options.models_dir}")
    service = EdgeAgentService(models, options.providers, options.threads)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        # gRPC's 4 MB default would refuse bitmaps above ~1180 x 1180 sent in the message.
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )
    pb_grpc.add_EdgeAgentServicer_to_server(service, server)
    bound = _listen(server, options.socket, options.socket_mode)
    server.start()
    for name in models if options.start_all else ():
        service.start(name)
    return RunningAgent(server, service, options.socket, bound)


def run_until_signalled(options: AgentOptions) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    agent = serve(options)
    print(f"edge agent listening on unix:{options.socket} ({', '.join(agent.service.models)})", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    agent.stop()
    return 0
