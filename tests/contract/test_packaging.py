"""Model packaging and the edge agent, end to end: StartModelPackagingJob, DescribeModelPackagingJob and
ListModelPackagingJobs through boto3 against `openlookout serve`, then the component's zip unpacked and
its edge agent started on a temporary socket, driven by a gRPC client generated here from the .proto,
and its answers compared with DetectAnomalies on the same images."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.contract.test_models import train_only_project, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "openlookout" / "edge" / "edge_agent.proto"
TRAIN_IMAGES = 10  # L4V's minimum: the model only has to be a real one, not a good one
AGENT_START_S = 60


@dataclass
class Trained:
    project: str
    bucket: str
    version: str
    arn: str


def _greengrass(bucket: str, component: str, **extra: Any) -> dict[str, Any]:
    return {
        "Greengrass": {
            "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"},
            "S3OutputLocation": {"Bucket": bucket, "Prefix": "components/"},
            "ComponentName": component,
            **extra,
        }
    }


@pytest.fixture(scope="module")
def trained(
    service: Any, lookoutvision: Any, s3: Any, tmp_path_factory: pytest.TempPathFactory, washers: Path
) -> Trained:
    folder = tmp_path_factory.mktemp("edge-train")
    project, bucket = train_only_project(service, lookoutvision, s3, folder, "edge", TRAIN_IMAGES, washers)
    created = lookoutvision.create_model(
        ProjectName=project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "out/"}}
    )["ModelMetadata"]
    # Packaging a model that is still TRAINING is a conflict.
    with pytest.raises(lookoutvision.exceptions.ConflictException) as excinfo:
        lookoutvision.start_model_packaging_job(
            ProjectName=project,
            ModelVersion=created["ModelVersion"],
            Configuration=_greengrass(bucket, "too-early"),
        )
    assert "TRAINED or HOSTED" in str(excinfo.value)
    model = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=created["ModelVersion"])[
            "ModelDescription"
        ],
        {"TRAINED", "TRAINING_FAILED"},
    )
    assert model["Status"] == "TRAINED", model["StatusMessage"]
    return Trained(project, bucket, model["ModelVersion"], model["ModelArn"])


def test_bad_packaging_requests_get_l4v_errors(lookoutvision: Any, trained: Trained) -> None:
    project, bucket, version = trained.project, trained.bucket, trained.version
    invalid = [
        (_greengrass(bucket, "c", TargetDevice="jetson_xavier"), "exactly one of TargetDevice"),
        ({"Greengrass": {"S3OutputLocation": {"Bucket": bucket}, "ComponentName": "c"}}, "exactly one"),
        (
            _greengrass(
                bucket, "c", TargetPlatform={"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"}
            ),
            "gpu-code",
        ),
        (_greengrass(bucket, "c", CompilerOptions="not json"), "not a JSON object"),
        (_greengrass(bucket, "c", CompilerOptions='{"gpu-code": "sm_75"}'), "only mcpu and mattr"),
    ]
    no_platform = _greengrass(bucket, "c", TargetDevice="jetson_xavier", CompilerOptions='{"mcpu": "x"}')
    del no_platform["Greengrass"]["TargetPlatform"]
    invalid.append((no_platform, "not allowed with TargetDevice"))
    for configuration, message in invalid:
        with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
            lookoutvision.start_model_packaging_job(
                ProjectName=project, ModelVersion=version, Configuration=configuration
            )
        assert message in str(excinfo.value)
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.start_model_packaging_job(
            ProjectName=project, ModelVersion="99", Configuration=_greengrass(bucket, "c")
        )
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException) as excinfo:
        lookoutvision.describe_model_packaging_job(ProjectName=project, JobName="no-such-job")
    assert excinfo.value.response["ResourceType"] == "MODEL_PACKAGE_JOB"
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.list_model_packaging_jobs(ProjectName="no-such-project-x")
    # Nothing half-written: the refused requests left no job.
    assert lookoutvision.list_model_packaging_jobs(ProjectName=project)["ModelPackagingJobs"] == []


def _generated_client(directory: Path) -> tuple[ModuleType, ModuleType]:
    """edge_agent_pb2 and edge_agent_pb2_grpc generated from the .proto, as an L4V user would."""
    from grpc_tools import protoc

    directory.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO.parent}", f"--python_out={directory}", f"--grpc_python_out={directory}"]
    assert protoc.main([*args, str(PROTO)]) == 0
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module("edge_agent_pb2"), importlib.import_module("edge_agent_pb2_grpc")
    finally:
        sys.path.remove(str(directory))


@pytest.fixture(scope="module")
def package(lookoutvision: Any, s3: Any, trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged component, unpacked the way Greengrass does it; its folder."""
    project, bucket, version = trained.project, trained.bucket, trained.version
    configuration = _greengrass(bucket, "com.example.bottles", ComponentDescription="Bottle line 4")
    first = lookoutvision.start_model_packaging_job(
        ProjectName=project, ModelVersion=version, JobName="bottles-1", Configuration=configuration,
        ClientToken="token-bottles-1",
    )  # fmt: skip
    assert first == {"JobName": "bottles-1", "ResponseMetadata": first["ResponseMetadata"]}
    again = lookoutvision.start_model_packaging_job(
        ProjectName=project, ModelVersion=version, JobName="bottles-1", Configuration=configuration,
        ClientToken="token-bottles-1",
    )  # fmt: skip
    assert again["JobName"] == "bottles-1"  # a retry with the same ClientToken is the same request
    with pytest.raises(lookoutvision.exceptions.ConflictException):
        lookoutvision.start_model_packaging_job(
            ProjectName=project, ModelVersion=version, JobName="bottles-1", Configuration=configuration
        )
    job = wait_for(
        lambda: lookoutvision.describe_model_packaging_job(ProjectName=project, JobName="bottles-1")[
            "ModelPackagingDescription"
        ],
        {"SUCCEEDED", "FAILED"},
    )
    assert job["Status"] == "SUCCEEDED", job["StatusMessage"]
    assert job["ModelPackagingMethod"] == "Greengrass"
    assert job["ModelVersion"] == version
    assert job["ModelPackagingConfiguration"] == configuration
    output = job["ModelPackagingOutputDetails"]["Greengrass"]
    assert output["ComponentName"] == "com.example.bottles"
    assert output["ComponentVersion"] == f"{version}.0.0"  # L4V's default
    assert output["ComponentVersionArn"] == (
        f"arn:aws:greengrass:local:000000000000:components:com.example.bottles:versions:{version}.0.0"
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="components/")["Contents"]}
    zip_key = f"components/com.example.bottles-{version}.0.0.zip"
    recipe_key = f"components/com.example.bottles-{version}.0.0.recipe.yaml"
    assert keys == {zip_key, recipe_key}
    recipe = yaml.safe_load(s3.get_object(Bucket=bucket, Key=recipe_key)["Body"].read())
    manifest = recipe["Manifests"][0]
    assert manifest["Platform"] == {"os": "linux", "architecture": "amd64"}
    assert manifest["Artifacts"] == [{"Uri": f"s3://{bucket}/{zip_key}", "Unarchive": "ZIP"}]
    assert "onnxruntime>=" in manifest["Lifecycle"]["Install"]

    folder = tmp_path_factory.mktemp("device") / "components" / "com.example.bottles"
    with zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=zip_key)["Body"].read())) as archive:
        assert {"model/model.onnx", "model/model.json", "agent/openlookout/edge/agent.py"} <= set(
            archive.namelist()
        )
        archive.extractall(folder)
    return folder


def _published(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="components/")["Contents"]
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_clashing_component_version_fails_with_a_message(
    lookoutvision: Any, s3: Any, trained: Trained, package: Path
) -> None:
    configuration = _greengrass(trained.bucket, "com.example.bottles")
    published = _published(s3, trained.bucket)
    second = lookoutvision.start_model_packaging_job(
        ProjectName=trained.project, ModelVersion="latest", Configuration=configuration
    )["JobName"]
    assert len(second) == 36  # a generated UUID
    job = wait_for(
        lambda: lookoutvision.describe_model_packaging_job(ProjectName=trained.project, JobName=second)[
            "ModelPackagingDescription"
        ],
        {"SUCCEEDED", "FAILED"},
    )
    assert job["Status"] == "FAILED"
    assert "com.example.bottles version 1.0.0 already exists" in job["StatusMessage"]
    assert (
        _published(s3, trained.bucket) == published
    )  # the FAILED job wrote nothing (it once replaced the zip)
    pages = lookoutvision.get_paginator("list_model_packaging_jobs").paginate(
        ProjectName=trained.project, PaginationConfig={"PageSize": 1}
    )
    listed = [job for page in pages for job in page["ModelPackagingJobs"]]
    assert sorted(j["JobName"] for j in listed) == sorted(["bottles-1", second])
    assert {j["Status"] for j in listed} == {"SUCCEEDED", "FAILED"}


@pytest.fixture(scope="module")
def agent(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ModuleType, Any]]:
    """The packaged edge agent, run from the unpacked zip alone (PYTHONPATH=agent/), and a stub."""
    work = tmp_path_factory.mktemp("agent")
    socket_path = work / "agent.sock"
    environment = {**os.environ, "PYTHONPATH": str(package / "agent")}
    command = [
        sys.executable,
        "-m",
        "openlookout.edge",
        "--models",
        str(package.parent),
        "--socket",
        str(socket_path),
    ]
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(command, cwd=work, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:  # the agent is stopped however the setup below ends
        deadline = time.monotonic() + AGENT_START_S
        while not socket_path.exists():
            assert process.poll() is None, (work / "agent.log").read_text()
            assert time.monotonic() < deadline, "the edge agent did not start"
            time.sleep(0.2)
        pb, pb_grpc = _generated_client(work / "client")
        with grpc.insecure_channel(f"unix://{socket_path}") as channel:
            yield pb_grpc.EdgeAgentStub(channel), pb, process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    return excinfo.value.code()  # type: ignore[attr-defined,no-any-return]


def _images(washers: Path, kind: str, count: int) -> list[Path]:
    return sorted((washers / "test" / kind).glob("*.jpg"))[:count]


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _with_hole(pixels: np.ndarray) -> np.ndarray:
    """A 96 px square of random pixels over the washer's ring (the example images are 256 px): far
    from anything a model trained on ten normal images has seen, whatever its threshold."""
    holed = pixels.copy()
    holed[48:144, 80:176] = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    return holed


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_edge_agent_answers_as_detect_anomalies(
    lookoutvision: Any, trained: Trained, agent: tuple[Any, ModuleType, Any], washers: Path
) -> None:
    stub, pb, _process = agent
    name = "com.example.bottles"
    models = stub.ListModels(pb.ListModelsRequest()).models
    assert [(m.model_component, m.lookout_vision_model_arn, m.status) for m in models] == [
        (name, trained.arn, pb.STOPPED)
    ]
    pixels = _rgb(_images(washers, "good", 1)[0])
    height, width = pixels.shape[:2]
    bitmap = pb.Bitmap(width=width, height=height, byte_data=pixels.tobytes())
    detect = pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)
    assert _code(lambda: stub.DetectAnomalies(detect)) == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: stub.StopModel(pb.StopModelRequest(model_component=name))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    missing = pb.DetectAnomaliesRequest(model_component="nope", bitmap=bitmap)
    assert _code(lambda: stub.DetectAnomalies(missing)) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: stub.DescribeModel(pb.DescribeModelRequest(model_component="nope"))) == (
        grpc.StatusCode.NOT_FOUND
    )

    assert stub.StartModel(pb.StartModelRequest(model_component=name)).status == pb.STARTING
    deadline = time.monotonic() + AGENT_START_S
    while (
        described := stub.DescribeModel(pb.DescribeModelRequest(model_component=name))
    ).model_description.status != pb.RUNNING:
        assert described.model_description.status == pb.STARTING, described
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert described.model_description.lookout_vision_model_arn == trained.arn
    assert _code(lambda: stub.StartModel(pb.StartModelRequest(model_component=name))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )

    bad = [
        pb.Bitmap(width=32, height=32, byte_data=bytes(32 * 32 * 3)),
        pb.Bitmap(width=width, height=height, byte_data=pixels.tobytes()[:-3]),
        pb.Bitmap(width=width, height=height),
        pb.Bitmap(
            width=width,
            height=height,
            shared_memory_handle=pb.SharedMemoryHandle(name="/no-such-segment", size=width * height * 3),
        ),
    ]
    for bitmap_case in bad:
        request = pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap_case)
        assert _code(lambda r=request: stub.DetectAnomalies(r)) == grpc.StatusCode.INVALID_ARGUMENT

    lookoutvision.start_model(ProjectName=trained.project, ModelVersion=trained.version, MinInferenceUnits=1)
    hosted = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=trained.project, ModelVersion=trained.version)[
            "ModelDescription"
        ],
        {"HOSTED", "HOSTING_FAILED"},
    )
    assert hosted["Status"] == "HOSTED", hosted["StatusMessage"]
    # Both verdicts: so small a model may call the drawn defects normal, never a patch of noise on the ring.
    images = {str(p): _rgb(p) for p in _images(washers, "good", 2) + _images(washers, "stain", 2)}
    images["a good image with a hole"] = _with_hole(images[str(_images(washers, "good", 1)[0])])
    verdicts = set()
    for path, pixels in images.items():
        height, width = pixels.shape[:2]
        cloud = lookoutvision.detect_anomalies(
            ProjectName=trained.project,
            ModelVersion=trained.version,
            Body=_png(pixels),
            ContentType="image/png",
        )["DetectAnomalyResult"]
        edge = stub.DetectAnomalies(
            pb.DetectAnomaliesRequest(
                model_component=name, bitmap=pb.Bitmap(width=width, height=height, byte_data=pixels.tobytes())
            )
        ).detect_anomaly_result
        assert edge.is_anomalous == cloud["IsAnomalous"], path
        assert abs(edge.confidence - cloud["Confidence"]) < 1e-4, path
        cloud_mask = np.asarray(Image.open(io.BytesIO(cloud["AnomalyMask"])).convert("RGB"))
        assert (edge.anomaly_mask.width, edge.anomaly_mask.height) == (width, height)
        assert edge.anomaly_mask.byte_data == cloud_mask.tobytes(), path
        assert [(a.name, a.pixel_anomaly.hex_color) for a in edge.anomalies] == [
            (a["Name"], a["PixelAnomaly"]["Color"]) for a in cloud["Anomalies"]
        ]
        verdicts.add(edge.is_anomalous)

        # The same image through POSIX shared memory, the mask written back into shared memory.
        image_shm = shared_memory.SharedMemory(create=True, size=pixels.nbytes + 16)
        mask_shm = shared_memory.SharedMemory(create=True, size=pixels.nbytes)
        try:
            image_shm.buf[16 : 16 + pixels.nbytes] = pixels.tobytes()
            request = pb.DetectAnomaliesRequest(
                model_component=name,
                bitmap=pb.Bitmap(
                    width=width,
                    height=height,
                    shared_memory_handle=pb.SharedMemoryHandle(
                        name=image_shm.name, size=pixels.nbytes, offset=16
                    ),
                ),
                anomaly_mask_params=pb.AnomalyMaskParams(
                    shared_memory_handle=pb.SharedMemoryHandle(name=mask_shm.name, size=pixels.nbytes)
                ),
            )
            shared = stub.DetectAnomalies(request).detect_anomaly_result
            assert (shared.is_anomalous, shared.confidence) == (edge.is_anomalous, edge.confidence)
            assert shared.anomaly_mask.WhichOneof("data") == "shared_memory_handle"
            assert bytes(mask_shm.buf[: pixels.nbytes]) == cloud_mask.tobytes()
        finally:
            for segment in (image_shm, mask_shm):
                segment.close()
                segment.unlink()
    assert verdicts == {True, False}, "the test images should include both verdicts"
    # A bitmap larger than gRPC's default 4 MB message limit, the mask returned through shared memory.
    large = np.asarray(Image.fromarray(pixels).resize((1400, 1300)))
    mask_shm = shared_memory.SharedMemory(create=True, size=large.nbytes)
    try:
        request = pb.DetectAnomaliesRequest(
            model_component=name,
            bitmap=pb.Bitmap(width=1400, height=1300, byte_data=large.tobytes()),
            anomaly_mask_params=pb.AnomalyMaskParams(
                shared_memory_handle=pb.SharedMemoryHandle(name=mask_shm.name, size=large.nbytes)
            ),
        )
        assert stub.DetectAnomalies(request).detect_anomaly_result.anomaly_mask.width == 1400
    finally:
        mask_shm.close()
        mask_shm.unlink()
    lookoutvision.stop_model(ProjectName=trained.project, ModelVersion=trained.version)

    assert stub.StopModel(pb.StopModelRequest(model_component=name)).status == pb.STOPPED
    assert _code(lambda: stub.DetectAnomalies(detect)) == grpc.StatusCode.FAILED_PRECONDITION
    assert stub.ListModels(pb.ListModelsRequest()).models[0].status == pb.STOPPED  # still up
