"""OpenLookout's anomaly-detection engine: a detection method trains an ONNX graph and a manifest,
and one torch-free runtime serves every such model.

- `serving/`: what DetectAnomalies (Lambda, `openlookout serve`) and the edge agent load:
  onnxruntime + numpy + Pillow, never torch (`image_header` needs Pillow only: the API's image rules
  import it). The manifest, preprocessing, calibration curve, masks and `inference.Detector`.
- `patchcore/`: the PatchCore method's training (torch): backbone, patch features and graph, coreset,
  supervised head, `training.train`. A second method gets a package beside it, exports the same
  graph outputs and manifest, and is served unchanged.
- `evaluation/`: metrics, threshold choice, `evaluate.evaluate` (runs a Detector over labelled test
  images), plots and the HTML report (no torch).

Imports run one way: serving <- evaluation <- patchcore. This file imports nothing, so that
`import openlookout.ml.serving.inference` never pulls torch (nor `...serving.image_header` numpy).
"""
