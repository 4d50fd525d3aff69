"""S3 bucket-name and object-key rules, shared by the local S3 gateway and the L4V operations.

Bucket names follow S3's general-purpose naming rules. Keys are refused when a store that keeps
objects as files (the local S3 of `openlookout serve`) could resolve them outside the bucket's
folder: a `.` or `..` segment (with `/` or `\\` as separator), a NUL byte, or more than 1024 bytes.
Real S3 accepts dot segments, but no Lookout for Vision data needs them.
"""

from __future__ import annotations

import ipaddress
import re

from openlookout.core.errors import ValidationException

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
MAX_KEY_BYTES = 1024


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, in words, or None when it is."""
    if not _BUCKET.fullmatch(name):
        return (
            "must be 3 to 63 characters of lowercase letters, digits, dots and hyphens, "
            "and begin and end with a letter or digit"
        )
    if ".." in name:
        return "must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
        return "must not be formatted as an IP address"
    except ValueError:
        pass
    if name.startswith(_BUCKET_RESERVED_PREFIXES) or name.endswith(_BUCKET_RESERVED_SUFFIXES):
        return "uses a prefix or suffix that S3 reserves"
    return None


def key_problem(key: str) -> str | None:
    """Why `key` is refused as an object key (or key prefix), in words, or None when it is fine."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    if "\x00" in key:
        return "contains a NUL character"
    if any(segment in (".", "..") for segment in re.split(r"[/\\]", key)):
        return "contains a '.' or '..' path segment"
    return None


def location_problem(bucket: str, key: str) -> str | None:
    """Why s3://bucket/key is refused, completing "The ... s3://bucket/key ...", or None."""
    problem = bucket_name_problem(bucket)
    if problem:
        return f"has an invalid bucket name: it {problem}"
    problem = key_problem(key)
    return f"has a key that {problem}" if problem else None


def check_location(bucket: str, key: str, what: str) -> None:
    """Raises L4V's ValidationException when `what` (e.g. "manifest") names an unusable location."""
    problem = location_problem(bucket, key)
    if problem:
        raise ValidationException(f"The {what} s3://{bucket}/{key} {problem}.")


__all__ = ["MAX_KEY_BYTES", "bucket_name_problem", "check_location", "key_problem", "location_problem"]
