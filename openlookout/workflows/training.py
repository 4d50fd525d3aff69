"""Steps of the training state machine (statemachines/training.asl.json).

Prepare (a small Lambda) freezes the datasets into a job spec in S3; Train (the container
image, on Lambda or a GPU job) downloads the images, trains, evaluates and writes the model
artifact and L4V's evaluation files; Finish and Fail record the outcome on the model item.
Whatever breaks, the Catch paths end in Fail, so no model stays TRAINING.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from openlookout.core.artifacts import model_artifact_prefix
from openlookout.core.observability import logger
from openlookout.lifecycles import model as lifecycle
from openlookout.lifecycles.model import ModelEvent
from openlookout.lifecycles.model import record_progress as write_progress
from openlookout.services import datasets as dataset_service
from openlookout.services.manifests import ANOMALY, NORMAL, parse_line, parse_s3_uri
from openlookout.services.models import get_model
from openlookout.settings import settings
from openlookout.storage import s3
from openlookout.storage.artifacts import encryption_args, put_file
from openlookout.storage.tables import DatasetEntryItem, DatasetItem
from openlookout.workflows import contracts
from openlookout.workflows.caught import caught_error
from openlookout.workflows.steps import Step, Steps, step_error

# Above this many images the Lambda path risks its 15-minute limit: use the job path.
TEST_SHARE_OF_NORMALS = 0.2  # single-dataset projects: held-out share for evaluation
TEST_SHARE_OF_ANOMALIES = 0.5  # the rest calibrates the threshold
# torch.onnx.export keeps global state, so two trainings in one process must not overlap. A Lambda
# execution environment runs one at a time anyway; `openlookout serve` queues them here.
_ONE_TRAINING_AT_A_TIME = threading.Lock()


class MaskSpec(BaseModel):
    uri: str
    colors: dict[str, str] = Field(default_factory=dict)  # "#rrggbb" -> anomaly class name


class ImageSpec(BaseModel):
    uri: str
    anomalous: bool
    masks: list[MaskSpec] = Field(default_factory=list)


class JobSpec(BaseModel):
    """What one training runs on, frozen by Prepare into job.json beside the model's artifacts."""

    project_name: str
    model_version: int
    model_arn: str
    train: list[ImageSpec]
    test: list[ImageSpec]
    output_bucket: str
    output_prefix: str
    kms_key_id: str | None
    artifact_bucket: str
    artifact_prefix: str


def _image_spec(entry: DatasetEntryItem) -> ImageSpec | None:
    """An entry as import stored it: its label, and its masks as import's manifest reader parsed
    them (services/manifests.py); None when unlabeled. Only an anomalous image's masks are used."""
    if entry.anomaly_class not in (NORMAL, ANOMALY):
        return None
    anomalous = entry.anomaly_class == ANOMALY
    parsed = parse_line(0, entry.entry)
    masks = [MaskSpec(uri=m.location.uri, colors=dict(m.colors)) for m in parsed.masks] if anomalous else []
    return ImageSpec(uri=parsed.source_ref, anomalous=anomalous, masks=masks)


def _dataset_images(item: DatasetItem) -> list[ImageSpec]:
    if not item.generation:
        return []
    key = dataset_service.entries_key(item.project_name, item.dataset_type, item.generation)
    specs = (_image_spec(entry) for entry in DatasetEntryItem.query(key))
    return [spec for spec in specs if spec is not None]


def _stable_order(images: list[ImageSpec]) -> list[ImageSpec]:
    return sorted(images, key=lambda i: hashlib.sha256(i.uri.encode()).hexdigest())


def split_single_dataset(images: list[ImageSpec]) -> tuple[list[ImageSpec], list[ImageSpec]]:
    """A deterministic stratified split of a project that has only a train dataset."""
    train: list[ImageSpec] = []
    test: list[ImageSpec] = []
    for anomalous, share in ((False, TEST_SHARE_OF_NORMALS), (True, TEST_SHARE_OF_ANOMALIES)):
        group = _stable_order([i for i in images if i.anomalous == anomalous])
        held_out = round(len(group) * share)
        if anomalous is False:
            held_out = min(max(held_out, 1 if len(group) >= 5 else 0), len(group) - 2)
        test += group[:held_out]
        train += group[held_out:]
    return train, test


def prepare(project_name: str, model_version: int) -> dict[str, Any]:
    """Freezes the datasets into a job spec (what trains, what tests) and picks the compute path."""
    model = get_model(project_name, model_version)
    found = {d.dataset_type: d for d in DatasetItem.query(project_name, consistent_read=True)}
    if "train" not in found:
        raise TrainingError("The project's train dataset was deleted before training started.")
    train_images = _dataset_images(found["train"])
    if "test" in found:
        train, test = train_images, _dataset_images(found["test"])
    else:
        train, test = split_single_dataset(train_images)
    normal = sum(1 for i in train if not i.anomalous)
    if normal < 2:
        raise TrainingError(
            f"The train dataset has {normal} usable normal images; training needs at least 2."
        )
    bucket = settings().artifacts_bucket
    spec = JobSpec(
        project_name=project_name,
        model_version=int(model_version),
        model_arn=model.model_arn,
        train=train,
        test=test,
        output_bucket=model.output_bucket or bucket,
        output_prefix=model.output_prefix or "",
        kms_key_id=model.kms_key_id,
        artifact_bucket=bucket,
        artifact_prefix=model.artifact_prefix or model_artifact_prefix(project_name, model_version),
    )
    key = f"{spec.artifact_prefix}job.json"
    s3.put_text(bucket, key, spec.model_dump_json())
    images = len(train) + len(test)
    use_job = settings().training_compute == "GPU" or images > settings().training_lambda_max_images
    logger.info("training prepared", extra={"train": len(train), "test": len(test), "use_job": use_job})
    return {"JobSpec": {"Bucket": bucket, "Key": key}, "ImageCount": images, "UseJob": use_job}


class TrainingError(Exception):
    """A failure the user can act on; its message becomes the model's StatusMessage."""


def _download(uri: str, directory: Path) -> Path:
    ref = parse_s3_uri(uri)
    if ref is None:
        raise TrainingError(f"{uri} is not an S3 URI.")
    path = directory / hashlib.sha256(uri.encode()).hexdigest()[:24]
    try:
        path.write_bytes(s3.read_object(ref.bucket, ref.key))
    except s3.ObjectUnavailable as error:
        raise TrainingError(f"The image {uri} {error.reason}.") from None
    return path


def _download_all(spec: JobSpec, work: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """Every image and mask of the spec, in `work`, by URI."""
    images = spec.train + spec.test
    uris = {i.uri for i in images} | {m.uri for i in images for m in i.masks}
    log(f"Downloading {len(uris)} images and masks")
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(uris, pool.map(lambda uri: _download(uri, work), uris), strict=True))


def _labeled_anomalies(spec: JobSpec, local: dict[str, Path]) -> list[Any]:
    """The train set's anomalous images, one per anomaly class of its masks (or one without a mask)."""
    from openlookout.ml.patchcore.training import LabeledAnomaly
    from openlookout.ml.serving.masks import split_by_color

    anomalies: list[LabeledAnomaly] = []
    for image in (i for i in spec.train if i.anomalous):
        parts = [p for m in image.masks for p in split_by_color(local[m.uri], m.colors)]
        if not parts:
            anomalies.append(LabeledAnomaly(str(local[image.uri])))
        for mask, name, color in parts:
            anomalies.append(LabeledAnomaly(str(local[image.uri]), mask, name, color))
    return anomalies


def _test_samples(spec: JobSpec, local: dict[str, Path]) -> list[Any]:
    from openlookout.ml.evaluation.results import TestSample
    from openlookout.ml.serving.masks import any_class

    samples = []
    for image in spec.test:
        truth = any_class(local[image.masks[0].uri], image.masks[0].colors) if image.masks else None
        mask, class_name = (truth.mask, truth.class_name) if truth else (None, None)  # per-class histograms
        samples.append(TestSample(str(local[image.uri]), image.anomalous, mask, class_name, image.uri))
    return samples


def _write_evaluation(spec: JobSpec, evaluation: Any, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """L4V's evaluation manifest and result, and the report, into the output location; returns
    what Finish records and the aggregated metrics."""
    from openlookout.ml.evaluation.report import write_report

    names = f"{spec.project_name}-{spec.model_version}"
    manifest_key = f"{spec.output_prefix}EvaluationManifest-{names}.json"
    result_key = f"{spec.output_prefix}EvaluationResult-{names}.json"
    evaluation.write_manifest(
        work / "manifest.jsonl",
        model_arn=spec.model_arn,
        project_name=spec.project_name,
        model_version=str(spec.model_version),
    )
    evaluation.write_result(work / "result.json", model_arn=spec.model_arn)
    encryption = encryption_args(spec.kms_key_id)
    put_file(spec.output_bucket, manifest_key, work / "manifest.jsonl", **encryption)
    put_file(spec.output_bucket, result_key, work / "result.json", **encryption)
    report = work / "report"
    for path in write_report(evaluation, report):
        relative = path.relative_to(report).as_posix()
        put_file(spec.output_bucket, f"{spec.output_prefix}EvaluationReport-{names}/{relative}", path)
    # Performance is the evaluation result's aggregated metrics, so both always agree.
    document = evaluation.result_document(model_arn=spec.model_arn)
    aggregated: dict[str, Any] = document["AggregatedEvaluationResults"]["Metrics"]
    outcome = {
        "Performance": {key: aggregated.get(key) for key in ("F1Score", "Recall", "Precision")},
        "EvaluationManifestKey": manifest_key,
        "EvaluationResultKey": result_key,
        "EvaluationEndTimestamp": datetime.now(UTC).timestamp(),
    }
    return outcome, aggregated


def run_training(spec: JobSpec, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Trains, evaluates and writes every output; returns what Finish records on the model."""
    from openlookout.ml.evaluation.evaluate import evaluate
    from openlookout.ml.patchcore.training import train
    from openlookout.ml.serving.inference import Detector

    log = progress or (lambda message: logger.info(message))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="openlookout-train-") as scratch:
        work = Path(scratch)
        local = _download_all(spec, work, log)
        normals = [str(local[i.uri]) for i in spec.train if not i.anomalous]
        anomalies = _labeled_anomalies(spec, local)
        log(f"Training on {len(normals)} normal and {len(anomalies)} anomalous images")
        model_dir = work / "model"
        with _ONE_TRAINING_AT_A_TIME:
            result = train(normals, anomalies=anomalies, progress=log)
            onnx_path, manifest_path = result.export(model_dir)
        put_file(spec.artifact_bucket, f"{spec.artifact_prefix}model.onnx", onnx_path)
        put_file(spec.artifact_bucket, f"{spec.artifact_prefix}model.json", manifest_path)
        log(f"Model written to s3://{spec.artifact_bucket}/{spec.artifact_prefix}")

        samples = _test_samples(spec, local)
        log(f"Evaluating: 0 of {len(samples)}")
        evaluation = evaluate(
            Detector.load(model_dir), samples, number_of_training_images=len(spec.train), progress=progress
        )
        evaluation.training = result.info
        outcome, aggregated = _write_evaluation(spec, evaluation, work)
        log(
            "training finished in {:.1f} s: F1 {:.3f}, image AUROC {}".format(
                time.perf_counter() - started, aggregated.get("F1Score") or 0.0, aggregated.get("ROCAUC")
            )
        )
    return outcome


def train_step(event: Mapping[str, Any]) -> dict[str, Any]:
    """TrainOnLambda: the TrainModel function trains the job spec that Prepare wrote."""
    step = contracts.read(event, contracts.TrainStep)
    return train_from_spec_location(step.JobSpec.Bucket, step.JobSpec.Key)


def train_from_spec_location(bucket: str, key: str) -> dict[str, Any]:
    spec = JobSpec.model_validate_json(s3.get_text(bucket, key))
    return run_training(spec, progress=StatusReporter(spec.project_name, spec.model_version))


class StatusReporter:
    """Training progress into the model's StatusMessage while it is TRAINING: every message is
    logged, but the table is written at most once per `interval` seconds (and never after the
    model left TRAINING, so a late message cannot undo Finish or Fail)."""

    def __init__(self, project_name: str, model_version: int, interval: float = 3.0) -> None:
        self.project_name, self.model_version, self.interval = project_name, model_version, interval
        self.last_write = float("-inf")

    def __call__(self, message: str) -> None:
        logger.info(message)
        now = time.monotonic()
        if now - self.last_write < self.interval:
            return
        self.last_write = now
        write_progress(self.project_name, self.model_version, message)


def finish(project_name: str, model_version: int, outcome: dict[str, Any]) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    performance = {k: v for k, v in (outcome.get("Performance") or {}).items() if v is not None}
    lifecycle.record(
        model,
        ModelEvent.TRAINING_SUCCEEDED,
        performance=performance or None,
        evaluation_manifest_key=outcome.get("EvaluationManifestKey"),
        evaluation_result_key=outcome.get("EvaluationResultKey"),
        evaluation_end=datetime.fromtimestamp(float(outcome["EvaluationEndTimestamp"]), tz=UTC),
    )
    return {"Status": model.status}


def failure_message(error: dict[str, Any] | None) -> str:
    """A message a user can act on."""
    if not error:
        return "Training failed for an unknown reason."
    caught = caught_error(error)
    return lifecycle.training_failure_message(caught.kind, caught.message)


def fail(project_name: str, model_version: int, error: dict[str, Any] | None) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    lifecycle.record(model, ModelEvent.TRAINING_FAILED, failure_message(error))
    return {"Status": model.status}


# ------------------------------------------------------------------ the GPU job path

JOB_RESULT_NAME = "training-result.json"


def run_job(bucket: str, key: str) -> None:
    """Entry point of the training job (SageMaker): same code, result left in S3 for ReadJobResult."""
    outcome = train_from_spec_location(bucket, key)
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    s3.put_text(bucket, prefix + JOB_RESULT_NAME, json.dumps(outcome))


def read_job_result(bucket: str, key: str) -> dict[str, Any]:
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    try:
        return dict(json.loads(s3.get_text(bucket, prefix + JOB_RESULT_NAME)))
    except s3.ObjectUnavailable:
        raise TrainingError("The training job ended without writing its result.") from None


# This module's workflow steps (workflows/steps.py runs them).
STEPS: Steps = {
    ("ModelWorkflowFunction", "PrepareTraining"): Step(
        contracts.PrepareTrainingStep,
        contracts.PreparedTraining,
        lambda s: prepare(s.ProjectName, s.ModelVersion),
    ),
    ("ModelWorkflowFunction", "ReadJobResult"): Step(
        contracts.ReadJobResultStep,
        contracts.TrainingOutcome,
        lambda s: read_job_result(s.JobSpec.Bucket, s.JobSpec.Key),
    ),
    ("ModelWorkflowFunction", "FinishTraining"): Step(
        contracts.FinishTrainingStep,
        contracts.StatusResult,
        lambda s: finish(s.ProjectName, s.ModelVersion, contracts.dump(s.Result)),
    ),
    ("ModelWorkflowFunction", "FailTraining"): Step(
        contracts.FailTrainingStep,
        contracts.StatusResult,
        lambda s: fail(s.ProjectName, s.ModelVersion, step_error(s)),
    ),
    ("TrainModelFunction", None): Step(contracts.TrainStep, contracts.TrainingOutcome, train_step),
}
