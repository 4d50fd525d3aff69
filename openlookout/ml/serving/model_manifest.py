"""The JSON manifest written beside model.onnx (torch-free; read by the serving side)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calibration import Calibration
from .images import PREPROCESS_BILINEAR, PREPROCESS_FAST, PREPROCESSING

FORMAT = "openlookout-anomaly-model"
FORMAT_VERSION = 1
BACKGROUND = "background"
BACKGROUND_COLOR = "#FFFFFF"
DEFAULT_CLASS = "anomaly"
# Distinct, saturated colours for classes the training data gave no colour for (tab10 minus grey).
PALETTE = ["#D62728", "#1F77B4", "#2CA02C", "#FF7F0E", "#9467BD", "#8C564B", "#E377C2", "#BCBD22", "#17BECF"]
RESIZE_TEXT = {
    PREPROCESS_BILINEAR: "bilinear to the input shape",
    PREPROCESS_FAST: "JPEG decoded at a 1/2^k scale and box-reduced by an integer factor, both keeping "
    "every side at or above the input shape, then bilinear to the input shape",
}


def _preprocessing(value: object) -> str:
    if value not in PREPROCESSING:
        raise ValueError(f"unknown input.preprocessing {value!r}; this version knows {PREPROCESSING}")
    return str(value)


@dataclass
class AnomalyClass:
    id: int
    name: str
    color: str


@dataclass
class ModelManifest:
    input_size: int
    calibration: Calibration
    classes: list[AnomalyClass]
    # (height, width) of the graph's input; None = input_size x input_size (models trained before
    # the input took the data's aspect ratio).
    input_shape: tuple[int, int] | None = None
    model_file: str = "model.onnx"
    # images.PREPROCESS_*: manifests written before the field existed were trained with the plain rule.
    preprocessing: str = PREPROCESS_BILINEAR
    engine: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the graph's input."""
        return self.input_shape or (self.input_size, self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_file": self.model_file,
            "input": {
                "name": "image",
                "shape": [1, 3, *self.shape],
                "layout": "NCHW",
                "dtype": "float32",
                "color": "RGB (grayscale replicated)",
                "resize": RESIZE_TEXT[self.preprocessing],
                "preprocessing": self.preprocessing,
                "value_range": [0, 255],
                "normalization": {"mean": [127.0] * 3, "std": [128.0] * 3, "applied": "inside the graph"},
            },
            "outputs": {
                "score": "float32 (N,): raw anomaly score = anomaly_map's maximum (or its top pixels' mean)",
                "anomaly_map": "float32 (N, 1, H/4, W/4): patch anomaly score map, smoothed",
                "class_map": "int64 (N, h, w): class id of the nearest labeled defect patch (if classes > 1)",
            },
            "threshold": self.calibration.threshold,
            "pixel_threshold": self.calibration.pixel_threshold,
            "calibration": self.calibration.to_dict(),
            "classes": [{"id": c.id, "name": c.name, "color": c.color} for c in self.classes],
            "background": {"name": BACKGROUND, "color": BACKGROUND_COLOR},
            "engine": self.engine,
            "training": self.training,
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelManifest:
        if d.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} manifest")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"manifest format_version {d['format_version']} is newer than {FORMAT_VERSION}")
        height, width = (int(v) for v in d["input"]["shape"][-2:])
        return cls(
            input_size=max(height, width),
            input_shape=(height, width),
            calibration=Calibration.from_dict(d["calibration"]),
            classes=[AnomalyClass(int(c["id"]), str(c["name"]), str(c["color"])) for c in d["classes"]],
            model_file=str(d.get("model_file", "model.onnx")),
            preprocessing=_preprocessing(d["input"].get("preprocessing", PREPROCESS_BILINEAR)),
            engine=dict(d.get("engine", {})),
            training=dict(d.get("training", {})),
        )

    @classmethod
    def read(cls, path: str | Path) -> ModelManifest:
        return cls.from_dict(json.loads(Path(path).read_text()))
