"""ListObjectsV2 over an S3Store: prefix, delimiter (common prefixes), start-after, pages of at
most 1000 entries with an opaque continuation token, and `encoding-type=url` (the AWS CLI's)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from openlookout.core.s3_names import MAX_KEY_BYTES
from openlookout.local import s3_xml
from openlookout.local.s3_store import S3Error, S3Store, check_key, invalid

MAX_KEYS = 1000


def _token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}{value}".encode()).decode()


def _untoken(token: str) -> tuple[str, str]:
    """(kind, value): "K" after a key, "P" after a common prefix."""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if text[:1] not in ("K", "P") or len(text) > MAX_KEY_BYTES + 1:
        raise invalid("The continuation token provided is incorrect.")
    return text[0], text[1:]


def _parameters(query: dict[str, str]) -> tuple[str, str, int, tuple[str, str] | None, bool]:
    if query.get("list-type") != "2":
        raise invalid("list-type must be 2 (ListObjectsV2).")
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    if prefix:
        check_key(prefix, "prefix")
    text = query.get("max-keys", str(MAX_KEYS))
    if not text.isdigit():
        raise invalid("max-keys must be a non-negative integer.")
    after: tuple[str, str] | None = None
    if "continuation-token" in query:
        after = _untoken(query["continuation-token"])
    elif query.get("start-after"):
        after = ("K", query["start-after"])
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise invalid("encoding-type must be url.")
    if query.get("fetch-owner", "false") not in ("true", "false"):
        raise invalid("fetch-owner must be true or false.")
    return prefix, delimiter, min(int(text), MAX_KEYS), after, encoding == "url"


def _page(
    store: S3Store, bucket: str, prefix: str, delimiter: str, limit: int, after: tuple[str, str] | None
) -> tuple[list[tuple[str, str]], bool]:
    """Up to `limit` entries ("K", key) or ("P", common prefix) after `after`, and whether more follow."""
    entries: list[tuple[str, str]] = []
    last_prefix = after[1] if after and after[0] == "P" else None
    for key in store.keys(bucket, prefix):
        if after and (key <= after[1] or (last_prefix is not None and key.startswith(last_prefix))):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = ("P", key[: cut + len(delimiter)]) if cut >= 0 else ("K", key)
        if entry[0] == "P" and entry[1] == last_prefix:
            continue
        if len(entries) == limit:
            return entries, True
        entries.append(entry)
        last_prefix = entry[1] if entry[0] == "P" else last_prefix
    return entries, False


def list_objects_v2(store: S3Store, bucket: str, query: dict[str, str]) -> bytes:
    prefix, delimiter, limit, after, url = _parameters(query)

    def shown(text: str) -> str:
        return quote(text, safe="/") if url else text

    entries, truncated = _page(store, bucket, prefix, delimiter, limit, after)
    inner = s3_xml.element("Name", bucket) + s3_xml.element("Prefix", shown(prefix))
    if delimiter:
        inner += s3_xml.element("Delimiter", shown(delimiter))
    inner += s3_xml.element("MaxKeys", limit) + s3_xml.element("KeyCount", len(entries))
    inner += s3_xml.element("IsTruncated", str(truncated).lower())
    if url:
        inner += s3_xml.element("EncodingType", "url")
    if "continuation-token" in query:
        inner += s3_xml.element("ContinuationToken", query["continuation-token"])
    if query.get("start-after"):
        inner += s3_xml.element("StartAfter", shown(query["start-after"]))
    if truncated and entries:
        inner += s3_xml.element("NextContinuationToken", _token(*entries[-1]))
    for kind, value in entries:
        if kind == "K":
            try:
                inner += s3_xml.object_entry(store.head(bucket, value), shown(value))
            except S3Error:
                continue  # deleted while listing
        else:
            inner += "<CommonPrefixes>" + s3_xml.element("Prefix", shown(value)) + "</CommonPrefixes>"
    return s3_xml.document("ListBucketResult", inner)
