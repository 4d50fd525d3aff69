"""Serving: onnxruntime + numpy + Pillow only (never imports torch; a test checks it)."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .images import ImageInput, InvalidImageError, model_input
from .masks import anomaly_list, class_index_image, mask_png, mask_rgb888, resize_map
from .model_manifest import AnomalyClass, ModelManifest

__all__ = ["DetectionResult", "Detector", "InvalidImageError"]


@dataclass
class DetectionResult:
    is_anomalous: bool
    confidence: float
    anomaly_score: float  # calibrated anomaly probability, monotone in raw_score
    raw_score: float
    anomalies: list[dict[str, Any]]
    width: int
    height: int
    # Per-pixel class id (0 = background) at the image's size: the mask before it is coloured. The PNG
    # (the API's AnomalyMask) and the RGB888 bitmap (the edge agent's) are both made from it on demand.
    class_image: np.ndarray = field(repr=False)
    classes: list[AnomalyClass] = field(repr=False)
    # The graph's map (float32, H/4 x W/4); `anomaly_map` is it at the image's size, made on first use:
    # a normal verdict paints no pixels, and the full-size map of a 2048 px photo is 16 MB to fill.
    graph_map: np.ndarray = field(repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    _full_map: np.ndarray | None = field(default=None, repr=False)
    _mask_png: bytes | None = field(default=None, repr=False)

    @property
    def anomaly_mask_png(self) -> bytes:
        """The mask as L4V's RGB PNG (white background, each class in its colour), encoded on first use."""
        if self._mask_png is None:
            self._mask_png = mask_png(self.class_image, self.classes)
        return self._mask_png

    def mask_rgb888(self) -> bytes:
        """The mask's pixels as RGB888 bytes (width x height x 3): what anomaly_mask_png decodes to."""
        return mask_rgb888(self.class_image, self.classes)

    @property
    def anomaly_map(self) -> np.ndarray:
        """Raw map at the input image's size (float32, H x W)."""
        if self._full_map is None:
            self._full_map = resize_map(self.graph_map, (self.width, self.height))
        return self._full_map

    def to_l4v(self, segmentation: bool = True) -> dict[str, Any]:
        """The DetectAnomalyResult object of L4V's DetectAnomalies response (docs/models.md)."""
        out: dict[str, Any] = {
            "Source": {"Type": "direct"},
            "IsAnomalous": self.is_anomalous,
            "Confidence": self.confidence,
        }
        if segmentation:
            out["Anomalies"] = self.anomalies
            out["AnomalyMask"] = base64.b64encode(self.anomaly_mask_png).decode("ascii")
        return out


CPU = ("CPUExecutionProvider",)


class Detector:
    def __init__(
        self,
        onnx_path: str | Path,
        manifest: ModelManifest,
        threads: int | None = None,
        providers: Sequence[str] = CPU,
    ) -> None:
        """providers: onnxruntime's execution providers in order of preference (a package for an NVIDIA
        target passes ("CUDAExecutionProvider", "CPUExecutionProvider"))."""
        self.model_manifest = manifest
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=list(providers))
        self.output_names = [o.name for o in self.session.get_outputs()]
        height, width = manifest.shape
        self.input_wh = (width, height)
        self.preprocessing = manifest.preprocessing
        self.calibration = manifest.calibration
        self.classes = manifest.classes

    @classmethod
    def load(
        cls,
        location: str | Path | tuple[str | Path, str | Path],
        threads: int | None = None,
        providers: Sequence[str] = CPU,
    ) -> Detector:
        """From a directory holding model.onnx + model.json, or an (onnx, manifest) pair of paths."""
        if isinstance(location, tuple):
            manifest = ModelManifest.read(location[1])
            onnx_path = Path(location[0])
        else:
            manifest = ModelManifest.read(Path(location) / "model.json")
            onnx_path = Path(location) / manifest.model_file
        return cls(onnx_path, manifest, threads=threads, providers=providers)

    def pixels(self, image: ImageInput) -> np.ndarray:
        """(1, 3, H, W) graph input for one image, preprocessed by the model's own rule."""
        return model_input(image, self.input_wh, self.preprocessing)[0][None]

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Raw graph outputs for a (N, 3, H, W) float32 batch of 0-255 pixels."""
        outs = self.session.run(None, {"image": np.ascontiguousarray(pixels, dtype=np.float32)})
        return dict(zip(self.output_names, outs, strict=True))

    def detect(self, image: ImageInput) -> DetectionResult:
        """Classify and segment one image (PNG/JPEG bytes, path, PIL image or array)."""
        t0 = time.perf_counter()
        pixels, (w, h) = model_input(image, self.input_wh, self.preprocessing)  # raises InvalidImageError
        x = pixels[None]
        t1 = time.perf_counter()
        out = self.run(x)
        t2 = time.perf_counter()
        raw = float(out["score"][0])
        anomalous, confidence, prob = self.calibration.decide(raw)
        graph_map = out["anomaly_map"][0, 0]
        amap = None
        if anomalous:
            amap = resize_map(graph_map, (w, h))
            mask = amap >= self.calibration.pixel_threshold
            cmap = out.get("class_map")
            class_img = class_index_image(mask, amap, None if cmap is None else cmap[0], self.classes)
        else:
            # A normal verdict gets an all-background mask so classification and segmentation agree.
            class_img = np.zeros((h, w), dtype=np.uint8)
        anomalies = anomaly_list(class_img, self.classes)
        t3 = time.perf_counter()
        return DetectionResult(
            is_anomalous=bool(anomalous),
            confidence=float(confidence),
            anomaly_score=float(prob),
            raw_score=raw,
            anomalies=anomalies,
            width=w,
            height=h,
            class_image=class_img,
            classes=self.classes,
            graph_map=graph_map,
            _full_map=amap,
            timings_ms={
                "decode": (t1 - t0) * 1e3,
                "graph": (t2 - t1) * 1e3,
                "postprocess": (t3 - t2) * 1e3,
            },
        )
