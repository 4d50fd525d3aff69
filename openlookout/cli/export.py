"""`openlookout export PROJECT VERSION DIR`: a model's ONNX graph and manifest from the artifacts
bucket, with a README on running them anywhere onnxruntime runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import CommandError
from openlookout.core.artifacts import model_artifact_prefix
from openlookout.settings import client_settings

MODEL_FILES = ("model.onnx", "model.json")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = client_command(
        subparsers,
        "export",
        "download a model's ONNX graph and manifest, with a README on running it",
        version="model version (TRAINED or HOSTED)",
    )
    export.add_argument(
        "directory", type=Path, metavar="DIR", help="where to write model.onnx, model.json, README.md"
    )
    export.add_argument(
        "--artifacts-bucket",
        default=client_settings().artifacts_bucket,
        help="the stack's ArtifactsBucketName output (default: the bucket that holds the model)",
    )
    export.set_defaults(run=export_model)


def _find_artifacts_bucket(s3: Any, prefix: str) -> str | None:
    for bucket in s3.list_buckets().get("Buckets", []):
        try:
            s3.head_object(Bucket=bucket["Name"], Key=f"{prefix}{MODEL_FILES[0]}")
        except Exception:  # not this bucket, or not ours to read
            continue
        return str(bucket["Name"])
    return None


EXPORT_README = """# {project} model {version}

Exported from OpenLookout by `openlookout export`. `model.onnx` is one self-contained graph
(pixels in; image score, anomaly map and class map out); `model.json` is its manifest (input
size, threshold, classes and colours). Performance at export: {performance}.

Run it anywhere onnxruntime runs, with the `openlookout` package (it decodes and resizes the
image exactly as training did, and answers L4V's DetectAnomalyResult):

```python
from openlookout.ml.serving.inference import Detector
detector = Detector.load(".")               # this folder
result = detector.detect(open("part.jpg", "rb").read())
print(result.is_anomalous, result.confidence, result.to_l4v()["Anomalies"])
```

Or with onnxruntime alone (`pip install onnxruntime numpy pillow`): the graph takes RGB pixels
(0-255, NCHW float32, at the size in model.json's `input.shape`; normalisation is inside the graph)
and returns the raw `score`, the `anomaly_map` and, with several classes, the `class_map`. An image
is anomalous when its score is at or above model.json's `threshold`. (A plain resize differs from
the training resize by about half a grey level; model.json's `input.resize` says what it did.)

```python
import json
import numpy as np
import onnxruntime
from PIL import Image
manifest = json.load(open("model.json"))
_, _, height, width = manifest["input"]["shape"]
pixels = np.asarray(Image.open("part.jpg").convert("RGB").resize((width, height), Image.BILINEAR))
batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)
session = onnxruntime.InferenceSession("model.onnx")
outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {{"image": batch}})))
print("anomalous:", bool(outputs["score"][0] >= manifest["threshold"]), "score:", float(outputs["score"][0]))
```
"""


def export_model(args: argparse.Namespace) -> int:
    clients = Clients.of(args)
    model = clients.lookoutvision.describe_model(ProjectName=args.project, ModelVersion=args.version)[
        "ModelDescription"
    ]
    prefix = model_artifact_prefix(args.project, model["ModelVersion"])
    bucket = args.artifacts_bucket or _find_artifacts_bucket(clients.s3, prefix)
    if bucket is None:
        raise CommandError(f"no bucket holds {prefix}{MODEL_FILES[0]}; pass --artifacts-bucket")
    args.directory.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        clients.s3.download_file(bucket, prefix + name, str(args.directory / name))
    performance = json.dumps(model.get("Performance") or {})
    text = EXPORT_README.format(project=args.project, version=model["ModelVersion"], performance=performance)
    (args.directory / "README.md").write_text(text)
    print(f"exported s3://{bucket}/{prefix} to {args.directory}/ (model.onnx, model.json, README.md)")
    return 0
