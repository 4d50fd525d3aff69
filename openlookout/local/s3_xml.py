"""S3's XML bodies: the answers the local S3 writes and the two request bodies it reads
(DeleteObjects, CompleteMultipartUpload)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from openlookout.local.s3_store import ObjectInfo, Part, S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BYTES = 4 * 1024 * 1024  # 1000 keys of 1024 bytes, escaped, fit
MAX_DELETE_KEYS = 1000


def timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def document(root: str, inner: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NAMESPACE}">{inner}</{root}>'.encode()


def element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    inner = element("Code", code) + element("Message", message)
    inner += element("Resource", resource) + element("RequestId", request_id)
    return f'<?xml version="1.0" encoding="UTF-8"?><Error>{inner}</Error>'.encode()


def object_entry(info: ObjectInfo, key: str) -> str:
    return (
        "<Contents>"
        + element("Key", key)
        + element("LastModified", timestamp(info.modified))
        + element("ETag", f'"{info.etag}"')
        + element("Size", info.size)
        + element("StorageClass", "STANDARD")
        + "</Contents>"
    )


def buckets(names: Iterable[tuple[str, float]]) -> bytes:
    listed = "".join(
        "<Bucket>" + element("Name", name) + element("CreationDate", timestamp(created)) + "</Bucket>"
        for name, created in names
    )
    owner = "<Owner>" + element("ID", "local") + element("DisplayName", "local") + "</Owner>"
    return document("ListAllMyBucketsResult", f"{owner}<Buckets>{listed}</Buckets>")


def _parse(body: bytes, root_name: str) -> ElementTree.Element:
    if len(body) > MAX_XML_BYTES:
        raise S3Error("MalformedXML", 400, f"The XML body is larger than {MAX_XML_BYTES} bytes.")
    try:
        root = ElementTree.fromstring(body)  # expat: no external entities, expansion limited
    except ElementTree.ParseError:
        raise S3Error("MalformedXML", 400, "The XML you provided was not well-formed.") from None
    if _local(root.tag) != root_name:
        raise S3Error("MalformedXML", 400, f"The XML you provided is not a {root_name} document.")
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in node if _local(child.tag) == name]


def _text(node: ElementTree.Element, name: str) -> str | None:
    found = _children(node, name)
    return (found[0].text or "") if found else None


def delete_request(body: bytes) -> tuple[list[str], bool]:
    """(keys, quiet) of a DeleteObjects body."""
    root = _parse(body, "Delete")
    objects = _children(root, "Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", 400, f"A Delete request lists 1 to {MAX_DELETE_KEYS} objects.")
    keys = []
    for entry in objects:
        key = _text(entry, "Key")
        if key is None:
            raise S3Error("MalformedXML", 400, "An Object of the Delete request has no Key.")
        if _text(entry, "VersionId") not in (None, "null"):
            raise S3Error(
                "InvalidArgument", 400, "Invalid version id specified (objects have no versions here)."
            )
        keys.append(key)
    return keys, (_text(root, "Quiet") or "").strip().lower() == "true"


def complete_request(body: bytes) -> list[Part]:
    root = _parse(body, "CompleteMultipartUpload")
    parts = []
    for entry in _children(root, "Part"):
        number, etag = (_text(entry, "PartNumber") or "").strip(), (_text(entry, "ETag") or "").strip()
        if not number.isdigit():
            raise S3Error("MalformedXML", 400, "A Part of the request has no valid PartNumber.")
        parts.append(Part(int(number), etag.strip('"')))
    return parts


def deleted(keys: list[str], quiet: bool) -> bytes:
    inner = "" if quiet else "".join("<Deleted>" + element("Key", key) + "</Deleted>" for key in keys)
    return document("DeleteResult", inner)
