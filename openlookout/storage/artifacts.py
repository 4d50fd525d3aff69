"""Writing and fetching whole files in S3: model artifacts and evaluation output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openlookout.storage.s3 import s3_client


def encryption_args(kms_key_id: str | None) -> dict[str, str]:
    """SSE-KMS with the caller's key when CreateModel named one (KmsKeyId), else the bucket's default."""
    if not kms_key_id:
        return {}
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}


def put_file(bucket: str, key: str, path: Path, **extra: Any) -> None:
    with open(path, "rb") as body:
        s3_client().put_object(Bucket=bucket, Key=key, Body=body, **extra)


def fetch_file(bucket: str, key: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s3_client().download_file(bucket, key, str(path))
    return path
