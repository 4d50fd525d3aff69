"""Saves and restores everything in a DynamoDB + S3 endpoint as plain files.

moto keeps its data in memory; this is how `--backend moto` keeps it across restarts: a
snapshot at every clean shutdown, restored at start. (moto's request recorder was tried
first: its replay breaks multipart uploads, whose upload ids differ on replay.)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

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


def save(dynamodb: Any, s3: Any, directory: Path) -> dict[str, int]:
    """Writes a complete snapshot next to `directory`, then swaps it in (a crash keeps the old one)."""
    staging = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir(parents=True)
    index: dict[str, Any] = {"tables": [], "buckets": []}
    counts = {"tables": 0, "items": 0, "buckets": 0, "objects": 0}
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
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for summary in page.get("Contents", []):
                body_file = f"object-{counts['objects']}.bin"
                response = s3.get_object(Bucket=name, Key=summary["Key"])
                with open(staging / body_file, "wb") as out:
                    shutil.copyfileobj(response["Body"], out)
                objects.append(
                    {
                        "key": summary["Key"],
                        "file": body_file,
                        "content_type": response.get("ContentType"),
                        "metadata": response.get("Metadata") or {},
                    }
                )
                counts["objects"] += 1
        index["buckets"].append({"name": name, "objects": objects})
        counts["buckets"] += 1
    (staging / INDEX).write_text(json.dumps(index), encoding="utf-8")
    old = directory.with_name(f"{directory.name}.old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)
    return counts


def restore(dynamodb: Any, s3: Any, directory: Path) -> dict[str, int]:
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
    for bucket in index["buckets"]:
        s3.create_bucket(Bucket=bucket["name"])
        for entry in bucket["objects"]:
            extra: dict[str, Any] = {"Metadata": entry["metadata"]}
            if entry.get("content_type"):
                extra["ContentType"] = entry["content_type"]
            with open(directory / entry["file"], "rb") as body:
                s3.put_object(Bucket=bucket["name"], Key=entry["key"], Body=body, **extra)
            counts["objects"] += 1
        counts["buckets"] += 1
    return counts


def _write(dynamodb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: batch}
    while pending:
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
