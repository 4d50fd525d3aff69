"""`openlookout edge-agent`: Lookout for Vision's EdgeAgent gRPC API on a Unix socket.

It serves every model found under --models (an unpacked model component, or a folder holding
model.onnx + model.json) through `openlookout.ml.serving.inference.Detector`, the same preprocessing and
graph as the cloud's DetectAnomalies. Needs grpcio, protobuf, onnxruntime, numpy and Pillow only.
"""

from __future__ import annotations

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
from openlookout.edge.command import DEFAULT_SOCKET
from openlookout.ml.serving.inference import DetectionResult, Detector

log = logging.getLogger("openlookout.edge")

COMPONENT_FILE = "component.json"  # written by the packaging job next to model.json
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_MESSAGE = MAX_SIDE * MAX_SIDE * 3 + 1024 * 1024  # the largest bitmap, in the message, and some room
SHM_ROOT = Path("/dev/shm")  # where Linux keeps shm_open segments
DETECT_MS_METADATA = "openlookout-detect-ms"  # trailing metadata: Detector.detect's milliseconds


class AgentError(Exception):
    """A refusal with its gRPC status code and a message naming the problem."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def _read_shared_memory(handle: Any, expected: int) -> bytes:
    if handle.size != expected:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"The shared memory size is {handle.size} bytes; a {expected}-byte RGB888 bitmap was expected.",
        )
    path = SHM_ROOT / handle.name.lstrip("/")
    try:
        with open(path, "rb") as segment:
            segment.seek(handle.offset)
            data = segment.read(handle.size)
    except OSError as error:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT, f"The shared memory {handle.name} cannot be read: {error}"
        ) from None
    if len(data) != expected:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"The shared memory {handle.name} holds {len(data)} bytes after offset {handle.offset}; "
            f"{expected} were expected.",
        )
    return data


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
        data = _read_shared_memory(bitmap.shared_memory_handle, expected)
    else:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT, "The bitmap has neither byte_data nor a shared memory handle."
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def _write_mask(result: DetectionResult, params: Any, bitmap: Any) -> None:
    """The anomaly mask as an RGB888 bitmap, in the message or in the caller's shared memory."""
    rgb = result.mask_rgb888()  # coloured straight from the class ids: no PNG is encoded or decoded
    bitmap.width, bitmap.height = result.width, result.height
    if params is None or not params.HasField("shared_memory_handle"):
        bitmap.byte_data = rgb
        return
    handle = params.shared_memory_handle
    if handle.size < len(rgb):
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"The mask's shared memory has {handle.size} bytes; the mask needs {len(rgb)}.",
        )
    try:
        with open(SHM_ROOT / handle.name.lstrip("/"), "r+b") as segment:
            segment.seek(handle.offset)
            segment.write(rgb)
    except OSError as error:
        raise AgentError(
            grpc.StatusCode.INVALID_ARGUMENT, f"The shared memory {handle.name} cannot be written: {error}"
        ) from None
    written = bitmap.shared_memory_handle
    written.name, written.size, written.offset = handle.name, len(rgb), handle.offset


def to_response(result: DetectionResult, detector: Detector, mask_params: Any) -> Any:
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
    _write_mask(result, mask_params, out.anomaly_mask)
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
        started = time.perf_counter()
        result = detector.detect(pixels)
        # The graph's own time, so a client (bench/edge_agent.py) can tell the agent's overhead apart.
        detect_ms = (time.perf_counter() - started) * 1000
        context.set_trailing_metadata(((DETECT_MS_METADATA, f"{detect_ms:.3f}"),))
        mask_params = request.anomaly_mask_params if request.HasField("anomaly_mask_params") else None
        return to_response(result, detector, mask_params)

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


def serve(
    models_dir: Path,
    socket_path: str = DEFAULT_SOCKET,
    start_all: bool = False,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    workers: int = 4,
    threads: int | None = None,
) -> tuple[grpc.Server, EdgeAgentService]:
    models = discover(models_dir)
    if not models:
        raise ValueError(f"no model (a folder with model.json) under {models_dir}")
    service = EdgeAgentService(models, providers, threads)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        # gRPC's 4 MB default would refuse bitmaps above ~1180 x 1180 sent in the message.
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )
    pb_grpc.add_EdgeAgentServicer_to_server(service, server)
    if os.path.exists(socket_path):  # a stale socket of an earlier run would make the bind fail
        os.unlink(socket_path)
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    for name in models if start_all else ():
        service.start(name)
    return server, service


def run_until_signalled(
    models_dir: Path,
    socket_path: str,
    start_all: bool,
    providers: Sequence[str],
    workers: int,
    threads: int | None = None,
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server, service = serve(models_dir, socket_path, start_all, providers, workers, threads)
    print(f"edge agent listening on unix:{socket_path} ({', '.join(service.models)})", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=2).wait()
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    return 0
