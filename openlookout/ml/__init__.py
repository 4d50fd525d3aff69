"""OpenLookout's anomaly-detection engine (PatchCore-class, EfficientNet-Lite features, one ONNX graph).

Modules, by who may import them:

- torch-free (serving: onnxruntime + numpy + Pillow): `config`, `images`, `calibration`, `manifest`,
  `masks`, `metrics`, `inference`, `evaluation`; `image_header` needs Pillow only (the API's image rules
  import it);
- training (torch): `graph`, `coreset`, `training`.

This package file imports nothing heavy so that `import openlookout.ml.inference` never pulls torch
(nor `import openlookout.ml.image_header` numpy).
"""

from .config import EngineConfig
from .image_header import InvalidImageError

__all__ = ["EngineConfig", "InvalidImageError"]
