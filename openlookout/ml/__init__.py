"""OpenLookout's anomaly-detection engine (PatchCore-class, EfficientNet-Lite features, one ONNX graph).

Modules, by who may import them:

- torch-free (serving: onnxruntime + numpy + Pillow): `config`, `images`, `calibration`, `manifest`,
  `masks`, `metrics`, `inference`, `evaluation`;
- training (torch): `graph`, `coreset`, `training`.

This package file imports nothing heavy so that `import openlookout.ml.inference` never pulls torch.
"""

from .config import EngineConfig
from .images import InvalidImageError

__all__ = ["EngineConfig", "InvalidImageError"]
