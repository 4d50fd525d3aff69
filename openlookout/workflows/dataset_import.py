"""The steps of the dataset state machine (statemachines/dataset_import.asl.json).

    Prepare -> [CopyEntries loop, updates only] -> CheckChunks (Map) -> Commit -> PurgePrevious
       \\______________________ any failure or error ______________________/
                                       v
                          MarkFailed -> PurgeFailed -> FinishFailure -> Fail

Prepare reads the manifest (or the staged Changes) once, checks every line's syntax and splits
the lines into chunks in S3. Each chunk checks its images in S3 and writes its entries under the new
generation. Commit switches the dataset to the new generation in one conditional write. Steps that
could run long (copying, purging) stop well before the Lambda timeout and are looped by the
state machine with a cursor. Validation problems are returned, never raised: only the first
failing line (by line number) becomes the StatusMessage, whichever chunk found it first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from openlookout.core.observability import logger
from openlookout.lifecycles import dataset as lifecycle
from openlookout.lifecycles.dataset import DatasetEvent, Operation
from openlookout.services.datasets import MAX_IMAGES, entries_key, staging_prefix
from openlookout.services.image_checks import ImageInfo, ImageRuleError, NeedMoreBytes, inspect_header
from openlookout.services.manifests import ManifestEntry, ManifestLineError, numbered_lines, parse_line
from openlookout.settings import settings
from openlookout.storage import s3
from openlookout.storage.tables import DatasetEntryItem, DatasetItem, ImageStats, start_key, utcnow
from openlookout.workflows.caught import caught_error
from openlookout.workflows.contracts import (
    Chunk,
    ChunkChecked,
    CommitResult,
    CopyProgress,
    DatasetState,
    Done,
    LineFailure,
    MarkedFailed,
    PrepareResult,
    PurgeTarget,
)
from openlookout.workflows.steps import Step, Steps

CHUNK_LINES = 250  # ~16 s of image checks in the worst local case, well under a second in AWS
CHECK_THREADS = 16  # image checks are S3 round trips: overlap them
SAFETY_SECONDS = 20.0  # looping steps stop this long before their Lambda timeout


def _label(state: DatasetState) -> str:
    return "Manifest" if state.Operation == Operation.CREATE else "Changes"


# ------------------------------------------------------------------ Prepare


def prepare(state: DatasetState) -> PrepareResult:
    """Parses every line; returns {"Ok": true, "Chunks": [...]} or {"Ok": false, "Message": ...}."""
    project, dataset_type, label = state.ProjectName, state.DatasetType, _label(state)
    source = state.Source
    if source is None:
        raise ValueError("a create or update operation needs a Source")
    limit = MAX_IMAGES[dataset_type]
    images_bucket: str | None = None
    if state.Operation == Operation.UPDATE:
        images_bucket = DatasetItem.get(project, dataset_type, consistent_read=True).images_bucket
    lines: dict[str, tuple[int, str]] = {}
    try:
        stream = s3.stream_object(source.Bucket, source.Key, source.VersionId)
        for number, text in numbered_lines(stream):
            entry = parse_line(number, text)
            if images_bucket is None:
                images_bucket = entry.image.bucket
            elif entry.image.bucket != images_bucket:
                raise ManifestLineError(
                    number,
                    f"the image {entry.source_ref} is not in the bucket {images_bucket} of the dataset's "
                    "other images; all images of a dataset must be in one bucket.",
                )
            # A source-ref given twice: the later line wins, as UpdateDatasetEntries replaces by source-ref.
            lines.pop(entry.source_ref, None)
            lines[entry.source_ref] = (number, entry.entry)
            if len(lines) > limit:
                return _refused(
                    f"{label} line {number}: the {label.lower()} has more than {limit:,} images; "
                    f"a {dataset_type} dataset can have at most {limit:,}."
                )
    except s3.ObjectUnavailable as error:
        what = "manifest" if label == "Manifest" else "staged changes"
        return _refused(f"The {what} {error.reason}.")
    except ManifestLineError as error:
        return _refused(f"{label} line {error.line_number}: {error.reason}")
    if not lines:
        return _refused(f"The {label.lower()} s3://{source.Bucket}/{source.Key} has no JSON lines.")
    ordered = sorted(lines.values())
    chunks = _stage_chunks(state, ordered)
    logger.info("manifest prepared", extra={"lines": len(ordered), "chunks": len(chunks)})
    return PrepareResult(Ok=True, Chunks=chunks, ImagesBucket=images_bucket, Images=len(ordered))


def _stage_chunks(state: DatasetState, ordered: list[tuple[int, str]]) -> list[Chunk]:
    """The numbered lines, CHUNK_LINES to an S3 object: one CheckChunks iteration each."""
    bucket = settings().artifacts_bucket
    prefix = staging_prefix(state.ProjectName, state.DatasetType, state.Generation)
    chunks = []
    for index, start in enumerate(range(0, len(ordered), CHUNK_LINES)):
        key = f"{prefix}chunk-{index:05d}.jsonl"
        part = ordered[start : start + CHUNK_LINES]
        body = "\n".join(json.dumps({"Line": number, "Entry": text}) for number, text in part)
        s3.put_text(bucket, key, body)
        chunks.append(
            Chunk(
                ProjectName=state.ProjectName,
                DatasetType=state.DatasetType,
                Generation=state.Generation,
                Operation=state.Operation,
                ChunkKey=key,
            )
        )
    return chunks


def _refused(message: str) -> PrepareResult:
    logger.info("manifest refused", extra={"reason": message})
    return PrepareResult(Ok=False, Message=message)


# ------------------------------------------------------------------ CheckChunk (Map iteration)


def check_chunk(chunk: Chunk) -> ChunkChecked:
    """Checks the chunk's images and masks; writes its entries only when all are valid."""
    text = s3.get_text(settings().artifacts_bucket, chunk.ChunkKey)
    lines = [json.loads(raw) for raw in text.splitlines()]
    entries = [parse_line(line["Line"], line["Entry"]) for line in lines]
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        outcomes = list(pool.map(_checked, entries))
    failures = [outcome for outcome in outcomes if isinstance(outcome, ManifestLineError)]
    if failures:
        first = min(failures, key=lambda failure: failure.line_number)
        failure = LineFailure(Line=first.line_number, Reason=first.reason)
        return ChunkChecked(Entries=0, FailedLines=len(failures), Failure=failure)
    key = entries_key(chunk.ProjectName, chunk.DatasetType, chunk.Generation)
    now = utcnow()
    with DatasetEntryItem.batch_write() as batch:
        for entry, info in zip(entries, outcomes, strict=True):
            assert isinstance(info, ImageInfo)
            batch.save(
                DatasetEntryItem(
                    key,
                    entry.source_ref,
                    entry=entry.entry,
                    labeled=entry.labeled,
                    anomaly_class=entry.anomaly_class,
                    created_at=now,
                    width=info.width,
                    height=info.height,
                )
            )
    return ChunkChecked(Entries=len(entries), FailedLines=0, Failure=None)


def _checked(entry: ManifestEntry) -> ImageInfo | ManifestLineError:
    try:
        image = _inspect(entry, entry.image.bucket, entry.image.key, "image", ("PNG", "JPEG"))
        for mask in entry.masks:
            info = _inspect(entry, mask.location.bucket, mask.location.key, "mask", ("PNG",))
            if (info.width, info.height) != (image.width, image.height):
                raise ManifestLineError(
                    entry.line_number,
                    f"the mask {mask.location.uri} is {info.width}x{info.height} pixels, but its image "
                    f"is {image.width}x{image.height}.",
                )
        return image
    except ManifestLineError as error:
        return error


def _inspect(entry: ManifestEntry, bucket: str, key: str, what: str, formats: tuple[str, ...]) -> ImageInfo:
    uri = f"s3://{bucket}/{key}"
    try:
        head = s3.read_head(bucket, key)
        try:
            return inspect_header(head.data, head.size, formats)
        except NeedMoreBytes:  # a JPEG with a long EXIF/ICC prefix: read it whole (at most 8 MB)
            return inspect_header(s3.read_object(bucket, key), head.size, formats)
    except s3.ObjectUnavailable as error:
        raise ManifestLineError(entry.line_number, f"the {what} {error.reason}.") from None
    except ImageRuleError as error:
        raise ManifestLineError(entry.line_number, f"the {what} {uri} {error}.") from None


# ------------------------------------------------------------------ CopyEntries (updates)


def copy_entries(state: DatasetState, seconds_left: float) -> CopyProgress:
    """Copies the current generation into the new one, from the cursor on, until time runs short.

    The update's own lines are written after this, so a line with a known source-ref replaces it.
    """
    deadline = time.monotonic() + seconds_left - SAFETY_SECONDS
    project, dataset_type = state.ProjectName, state.DatasetType
    current = DatasetItem.get(project, dataset_type, consistent_read=True).generation
    cursor = state.Copy.Cursor if state.Copy else None
    if current is None:
        return CopyProgress(Done=True, Cursor=None, Copied=0)
    target = entries_key(project, dataset_type, state.Generation)
    copied = 0
    source_key = entries_key(project, dataset_type, current)
    with DatasetEntryItem.batch_write() as batch:
        for item in _entries_after(source_key, cursor):
            item.dataset_key = target
            batch.save(item)
            copied += 1
            cursor = item.source_ref
            if copied % 500 == 0 and time.monotonic() > deadline:
                return CopyProgress(Done=False, Cursor=cursor, Copied=copied)
    return CopyProgress(Done=True, Cursor=None, Copied=copied)


def _entries_after(key: str, after: str | None) -> Iterator[DatasetEntryItem]:
    start = start_key(DatasetEntryItem, key, after) if after else None
    yield from DatasetEntryItem.query(key, last_evaluated_key=start, consistent_read=True)


# ------------------------------------------------------------------ Commit


def commit(state: DatasetState) -> CommitResult:
    """Switches the dataset to the new generation, or reports the first failing line."""
    failures = [result.Failure for result in state.Checked or [] if result.Failure]
    if failures:
        first = min(failures, key=lambda failure: failure.Line)
        others = sum(result.FailedLines for result in state.Checked or [] if result.Failure) - 1
        message = f"{_label(state)} line {first.Line}: {first.Reason}"
        if others:
            message += f" ({others} other line{'s' if others > 1 else ''} also failed.)"
        return CommitResult(Ok=False, Message=message)

    project, dataset_type, generation = state.ProjectName, state.DatasetType, state.Generation
    stats = count_entries(entries_key(project, dataset_type, generation))
    limit = MAX_IMAGES[dataset_type]
    if stats.total > limit:
        return CommitResult(
            Ok=False,
            Message=f"The update would give the dataset {int(stats.total):,} images; "
            f"a {dataset_type} dataset can have at most {limit:,}.",
        )
    if state.Prepared is None or state.Prepared.ImagesBucket is None:
        raise ValueError("Commit runs after a successful Prepare")
    previous = DatasetItem.get(project, dataset_type, consistent_read=True).generation
    switched = lifecycle.record(
        project,
        dataset_type,
        generation,
        DatasetEvent.COMMITTED,
        Operation(state.Operation),
        actions=(
            DatasetItem.generation.set(generation),
            DatasetItem.image_stats.set(stats),
            DatasetItem.images_bucket.set(state.Prepared.ImagesBucket),
        ),
    )
    if not switched:  # never purge the previous generation of a dataset this operation no longer owns
        raise DatasetMovedOn(f"The dataset moved on before generation {generation} was committed.")
    logger.info("dataset committed", extra={"generation": generation, "images": int(stats.total)})
    return CommitResult(Ok=True, PreviousGeneration=previous)


def count_entries(key: str) -> ImageStats:
    total = labeled = normal = anomaly = 0
    for entry in DatasetEntryItem.query(
        key, attributes_to_get=["Labeled", "AnomalyClass"], consistent_read=True
    ):
        total += 1
        labeled += bool(entry.labeled)
        normal += entry.anomaly_class == "normal"
        anomaly += entry.anomaly_class == "anomaly"
    return ImageStats(total=total, labeled=labeled, normal=normal, anomaly=anomaly)


# ------------------------------------------------------------------ failure path


class DatasetMovedOn(Exception):
    """The operation's generation is no longer the dataset's pending one (deleted, or replaced)."""


def failure_message(state: DatasetState) -> str:
    for result in (state.Committed, state.Prepared):
        if result is not None and result.Ok is False and result.Message:
            return result.Message
    caught = caught_error(dict(state.Error) if state.Error else None, unknown="unknown")
    return f"An internal error stopped the operation ({caught.kind}: {caught.message}). Try again."[:1000]


def mark_failed(state: DatasetState) -> MarkedFailed:
    """CREATE_FAILED, or UPDATE_FAILED_ROLLBACK_IN_PROGRESS: the current generation is untouched."""
    message = failure_message(state)
    text = message if state.Operation == Operation.CREATE else f"{message} Rolling back the update."
    _record(state, DatasetEvent.FAILED, text)
    logger.info("dataset operation failed", extra={"operation": state.Operation, "reason": message})
    return MarkedFailed(Message=message)


def finish_failure(state: DatasetState) -> Done:
    message = state.Failed.Message if state.Failed else failure_message(state)
    _record(
        state,
        DatasetEvent.ROLLED_BACK,
        f"{message} The update was rolled back; the dataset is as it was before.",
    )
    return Done(Done=True)


def _record(state: DatasetState, event: DatasetEvent, message: str) -> None:
    operation = Operation(state.Operation)
    lifecycle.record(state.ProjectName, state.DatasetType, state.Generation, event, operation, message)


# ------------------------------------------------------------------ Purge


def purge(target: PurgeTarget, seconds_left: float) -> Done:
    """Deletes a generation's entries and a staging prefix, until done or time runs short."""
    deadline = time.monotonic() + seconds_left - SAFETY_SECONDS
    project, dataset_type = target.ProjectName, target.DatasetType
    generation = target.DatasetGeneration
    if generation:
        deleted = 0
        with DatasetEntryItem.batch_write() as batch:
            for item in DatasetEntryItem.query(
                entries_key(project, dataset_type, generation), attributes_to_get=["DatasetKey", "SourceRef"]
            ):
                batch.delete(item)
                deleted += 1
                if deleted % 500 == 0 and time.monotonic() > deadline:
                    return Done(Done=False)
    staging = target.StagingGeneration
    if staging:
        s3.delete_prefix(settings().artifacts_bucket, staging_prefix(project, dataset_type, staging))
    return Done(Done=True)


# This module's workflow steps (workflows/steps.py runs them): these Tasks get the execution's state.
STEPS: Steps = {
    ("DatasetPrepareFunction", None): Step(DatasetState, PrepareResult, prepare),
    ("DatasetCopyEntriesFunction", None): Step(DatasetState, CopyProgress, copy_entries, timed=True),
    ("DatasetCheckChunkFunction", None): Step(Chunk, ChunkChecked, check_chunk),
    ("DatasetCommitFunction", None): Step(DatasetState, CommitResult, commit),
    ("DatasetPurgeFunction", None): Step(PurgeTarget, Done, purge, timed=True),
    ("DatasetMarkFailedFunction", None): Step(DatasetState, MarkedFailed, mark_failed),
    ("DatasetFinishFailureFunction", None): Step(DatasetState, Done, finish_failure),
}
