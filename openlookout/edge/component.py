"""A trained model as a Greengrass v2 component: a recipe (YAML) and one artifact zip.

The zip holds `model/` (the ONNX graph, its manifest and component.json naming the component and
the model ARN) and `agent/` (the `openlookout` modules the edge agent imports, nothing else), so a
device needs only Python with grpcio, protobuf, onnxruntime, numpy and Pillow. The target chooses
the recipe's platform and runtime: an NVIDIA accelerator gets onnxruntime-gpu and its CUDA provider.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from openlookout.edge.socket_path import DEFAULT_SOCKET, DEFAULT_SOCKET_MODE

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the `openlookout` package
# What `python -m openlookout.edge` imports (tests run the agent from an unpacked zip to prove it).
AGENT_MODULES = (
    "__init__.py",
    "ml/__init__.py",
    "ml/serving/__init__.py",
    "ml/serving/image_header.py",
    "ml/serving/images.py",
    "ml/serving/calibration.py",
    "ml/serving/model_manifest.py",
    "ml/serving/masks.py",
    "ml/serving/inference.py",
    "edge/__init__.py",
    "edge/__main__.py",
    "edge/command.py",
    "edge/agent.py",
    "edge/errors.py",
    "edge/shared_memory.py",
    "edge/socket_path.py",
    "edge/edge_agent.proto",
    "edge/edge_agent_pb2.py",
    "edge/edge_agent_pb2_grpc.py",
)
MODEL_FILES = ("model.onnx", "model.json")
# The generated gRPC code needs these runtimes or newer (see edge_agent_pb2*.py).
AGENT_REQUIREMENTS = ("grpcio>=1.85.1", "protobuf>=7.35.1", "numpy>=1.26", "pillow>=10")
GREENGRASS_ARCH = {"ARM64": "aarch64", "X86_64": "amd64"}
JETSON_XAVIER = {"Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA"}
RECIPE_FORMAT = "2020-01-25"


@dataclass(frozen=True)
class Target:
    """Where the component runs: Greengrass's platform and the onnxruntime build and providers."""

    os: str
    arch: str
    accelerator: str | None

    @staticmethod
    def of(greengrass: Mapping[str, Any]) -> Target:
        platform = JETSON_XAVIER if greengrass.get("TargetDevice") else greengrass["TargetPlatform"]
        return Target(platform["Os"], platform["Arch"], platform.get("Accelerator"))

    @property
    def onnxruntime(self) -> str:
        return "onnxruntime-gpu>=1.17" if self.accelerator == "NVIDIA" else "onnxruntime>=1.17"

    @property
    def providers(self) -> tuple[str, ...]:
        if self.accelerator == "NVIDIA":
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        return ("CPUExecutionProvider",)


def artifact_name(component: str, version: str) -> str:
    return f"{component}-{version}.zip"


def build_zip(model_dir: Path, metadata: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in MODEL_FILES:
            archive.write(model_dir / name, f"model/{name}")
        archive.writestr("model/component.json", json.dumps(dict(metadata), indent=2))
        for module in AGENT_MODULES:
            archive.write(PACKAGE_ROOT / module, f"agent/openlookout/{module}")
    return buffer.getvalue()


def build_recipe(
    component: str, version: str, description: str, target: Target, artifact_uri: str
) -> dict[str, Any]:
    root = "{artifacts:decompressedPath}/" + artifact_name(component, version).removesuffix(".zip")
    providers = " ".join(f"--provider {p}" for p in target.providers)
    requirements = " ".join(f"'{r}'" for r in (*AGENT_REQUIREMENTS, target.onnxruntime))
    return {
        "RecipeFormatVersion": RECIPE_FORMAT,
        "ComponentName": component,
        "ComponentVersion": version,
        "ComponentDescription": description,
        "ComponentPublisher": "OpenLookout",
        "ComponentConfiguration": {
            # A deployment may change both (e.g. SocketMode 660 for clients in the agent's group).
            "DefaultConfiguration": {"Socket": DEFAULT_SOCKET, "SocketMode": f"{DEFAULT_SOCKET_MODE:o}"}
        },
        "Manifests": [
            {
                "Platform": {"os": target.os.lower(), "architecture": GREENGRASS_ARCH[target.arch]},
                "Lifecycle": {
                    "Install": f"python3 -m pip install --user {requirements}",
                    "Run": (
                        f"PYTHONPATH={root}/agent python3 -m openlookout.edge --models {root}/model "
                        "--socket {configuration:/Socket} --socket-mode {configuration:/SocketMode} "
                        f"--start-all {providers}"
                    ),
                },
                "Artifacts": [{"Uri": artifact_uri, "Unarchive": "ZIP"}],
            }
        ],
    }


def recipe_yaml(recipe: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(recipe), sort_keys=False)
