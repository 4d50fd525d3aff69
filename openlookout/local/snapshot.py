"""Saves and restores everything in a DynamoDB endpoint as plain files.

moto keeps its data in memory; this is how `--backend moto` keeps it across restarts: a
snapshot at every clean shutdown, restored at start. (moto's request recorder was tried
first: its replay breaks multipart uploads, whose upload ids differ on replay.) Snapshots of
earlier versions also held moto's S3 buckets: restore() moves them into the local S3 store.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from openlookout.local.s3_store import S3Error, S3Store

log = logging.getLogger("serve.backends")

INDEX = "snapshot.json"


def _table_spec(description: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TableName": description["TableName"],
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if description.get(kind):
            spec[kind] = [
                {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
                for i in description[kind]
            ]
    return spec


def save(dynamodb: Any, directory: Path) -> dict[str, int]:
    """Writes a complete snapshot next to `directory`, then swaps it in (a crash keeps the old one)."""
    staging = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir(parents=True)
    index: dict[str, Any] = {"tables": []}
    counts = {"tables": 0, "items": 0}
    for page in dynamodb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            description = dynamodb.describe_table(TableName=name)["Table"]
            items_file = f"table-{len(index['tables'])}.jsonl"
            with open(staging / items_file, "w", encoding="utf-8") as out:
                for scan in dynamodb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
                    for item in scan["Items"]:
                        out.write(json.dumps(item) + "\n")
                        counts["items"] += 1
            index["tables"].append({"spec": _table_spec(description), "items": items_file})
            counts["tables"] += 1
    (staging / INDEX).write_text(json.dumps(index), encoding="utf-8")
    old = directory.with_name(f"{directory.name}.old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)
    return counts


def restore(dynamodb: Any, store: S3Store | None, directory: Path) -> dict[str, int]:
    counts = {"tables": 0, "items": 0, "buckets": 0, "objects": 0}
    index_path = directory / INDEX
    if not index_path.exists():
        return counts
    index = json.loads(index_path.read_text(encoding="utf-8"))
    for table in index["tables"]:
        dynamodb.create_table(**table["spec"])
        name = table["spec"]["TableName"]
        batch: list[dict[str, Any]] = []
        with open(directory / table["items"], encoding="utf-8") as lines:
            for line in lines:
                batch.append({"PutRequest": {"Item": json.loads(line)}})
                if len(batch) == 25:
                    _write(dynamodb, name, batch)
                    counts["items"] += len(batch)
                    batch = []
        if batch:
            _write(dynamodb, name, batch)
            counts["items"] += len(batch)
        counts["tables"] += 1
    if store is not None:
        for bucket in index.get("buckets", []):
            counts["objects"] += _move_bucket(store, bucket, directory)
            counts["buckets"] += 1
    return counts


def _write(dynamodb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: batch}
    while pending:
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _move_bucket(store: S3Store, bucket: dict[str, Any], directory: Path) -> int:
    """An older snapshot's bucket into the store, unless the store has the bucket already."""
    if not store.create_bucket(bucket["name"]):
        return 0
    for entry in bucket["objects"]:
        headers = {f"x-amz-meta-{k}": v for k, v in entry["metadata"].items()}
        if entry.get("content_type"):
            headers["content-type"] = entry["content_type"]
        try:
            with open(directory / entry["file"], "rb") as body:
                store.put(bucket["name"], entry["key"], iter(lambda: body.read(1024 * 1024), b""), headers)
        except S3Error as error:  # a key the store cannot keep as a file
            log.warning("snapshot: s3://%s/%s left out: %s", bucket["name"], entry["key"], error.message)
    return len(bucket["objects"])
