"""openlookout.local.s3_store and s3_listing: objects as files in s3rver's layout, every name that
becomes a path checked, S3's listing order, delimiters, pages and multipart rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from openlookout.local import snapshot
from openlookout.local.s3_listing import list_objects_v2
from openlookout.local.s3_store import MIN_PART_BYTES, Part, S3Error, S3Store


@pytest.fixture
def store(tmp_path: Path) -> S3Store:
    store = S3Store(tmp_path / "s3")
    store.create_bucket("b-1")
    return store


def put(store: S3Store, key: str, body: bytes = b"x", **headers: str) -> None:
    store.put("b-1", key, [body], {"content-type": "text/plain", **headers})


def code(error: pytest.ExceptionInfo[S3Error]) -> str:
    return error.value.code


def test_reads_what_s3rver_wrote(tmp_path: Path) -> None:
    """A data dir of an earlier version: no migration, and the ETag file is made when missing."""
    folder = tmp_path / "s3" / "old-bucket" / "images"
    folder.mkdir(parents=True)
    (folder / "a.png._S3rver_object").write_bytes(b"png")
    (folder / "a.png._S3rver_metadata.json").write_text(json.dumps({"content-type": "image/png"}))
    store = S3Store(tmp_path / "s3")
    info = store.head("old-bucket", "images/a.png")
    assert (info.size, info.headers["content-type"]) == (3, "image/png")
    assert info.etag == hashlib.md5(b"png").hexdigest()
    assert (folder / "a.png._S3rver_object.md5").read_text() == info.etag
    assert [name for name, _ in store.list_buckets()] == ["old-bucket"]


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../../x",
        "..",
        "a/./b",
        "a//b",
        "/a",
        "a\\..\\x",
        "k\x00",
        "._S3rver_uploads/x",
        "a._S3rver_object/b",
        "d/" + "x" * 240,
    ],
)
def test_keys_that_could_leave_their_folder_are_refused(store: S3Store, key: str, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    for call in (
        lambda: put(store, key),
        lambda: store.head("b-1", key),
        lambda: store.delete("b-1", key),
        lambda: store.create_upload("b-1", key, {}),
        lambda: list(store.keys("b-1", key + "/")),
    ):
        with pytest.raises(S3Error) as error:
            call()
        assert code(error) == "InvalidArgument", key
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("bucket", ["..", "a", "Up", "x/y", "._S3rver_uploads", ".incoming"])
def test_bucket_names_follow_s3s_rules(store: S3Store, bucket: str) -> None:
    with pytest.raises(S3Error) as error:
        store.create_bucket(bucket)
    assert code(error) == "InvalidBucketName"


@pytest.mark.parametrize("upload_id", ["../../x", "0123", "A" * 32, "0123456789abcdef0123456789abcde/"])
def test_upload_ids_are_ours_or_refused(store: S3Store, upload_id: str) -> None:
    with pytest.raises(S3Error) as error:
        store.put_part("b-1", "k", upload_id, 1, [b"x"])
    assert code(error) == "InvalidArgument"
    with pytest.raises(S3Error) as error:
        store.put_part("b-1", "k", "0" * 32, 1, [b"x"])
    assert code(error) == "NoSuchUpload"


def test_keys_come_in_s3s_order_not_the_folders(store: S3Store) -> None:
    for key in ("a/b", "a-b", "a", "a/", "b"):
        put(store, key)
    assert list(store.keys("b-1", "")) == ["a", "a-b", "a/", "a/b", "b"]  # '-' < '/' in UTF-8
    assert list(store.keys("b-1", "a/")) == ["a/", "a/b"]


def _listing(store: S3Store, **query: str) -> ElementTree.Element:
    return ElementTree.fromstring(list_objects_v2(store, "b-1", {"list-type": "2", **query}))


def _texts(root: ElementTree.Element, path: str) -> list[str]:
    """Texts at `path` below the root, e.g. "Contents/Key"."""
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    return [e.text or "" for e in root.findall("/".join(ns + part for part in path.split("/")))]


def test_pages_with_a_delimiter_give_each_entry_once(store: S3Store) -> None:
    for key in ("x/1", "x/2", "y", "z/1", "z/2", "zz"):
        put(store, key)
    seen: list[str] = []
    token: str | None = None
    while True:
        root = _listing(
            store, delimiter="/", **{"max-keys": "2"}, **({"continuation-token": token} if token else {})
        )
        seen += _texts(root, "Contents/Key") + [p for p in _texts(root, "CommonPrefixes/Prefix")]
        tokens = _texts(root, "NextContinuationToken")
        if not tokens:
            break
        token = tokens[0]
    assert sorted(seen) == ["x/", "y", "z/", "zz"]


def test_url_encoding_and_bad_tokens(store: S3Store) -> None:
    put(store, "a b/ü")
    assert _texts(_listing(store, **{"encoding-type": "url"}), "Contents/Key") == ["a%20b/%C3%BC"]
    with pytest.raises(S3Error) as error:
        _listing(store, **{"continuation-token": "not-a-token"})
    assert code(error) == "InvalidArgument"
    with pytest.raises(S3Error):
        _listing(store, prefix="../")


def test_multipart_rules_and_etag(store: S3Store, tmp_path: Path) -> None:
    upload = store.create_upload("b-1", "big", {"content-type": "application/zip"})
    first = store.put_part("b-1", "big", upload, 1, [b"1" * MIN_PART_BYTES])
    small = store.put_part("b-1", "big", upload, 2, [b"2"])
    last = store.put_part("b-1", "big", upload, 3, [b"3"])
    with pytest.raises(S3Error) as error:  # a part for another key is not this upload's
        store.put_part("b-1", "other", upload, 1, [b"x"])
    assert code(error) == "NoSuchUpload"
    for parts, expected in (
        ([Part(1, first), Part(2, small), Part(3, last)], "EntityTooSmall"),
        ([Part(3, last), Part(1, first)], "InvalidPartOrder"),
        ([Part(1, first), Part(3, "0" * 32)], "InvalidPart"),
        ([], "MalformedXML"),
    ):
        with pytest.raises(S3Error) as error:
            store.complete_upload("b-1", "big", upload, parts)
        assert code(error) == expected
    info = store.complete_upload("b-1", "big", upload, [Part(1, first), Part(3, last)])
    digests = bytes.fromhex(first) + bytes.fromhex(last)
    assert info.etag == hashlib.md5(digests).hexdigest() + "-2"
    assert (info.size, info.headers["content-type"]) == (MIN_PART_BYTES + 1, "application/zip")
    assert not (tmp_path / "s3" / "b-1" / "._S3rver_uploads" / upload).exists()
    assert list(store.keys("b-1", "")) == ["big"]  # the uploads folder is not listed


def test_delete_prunes_empty_folders_and_buckets_must_be_empty(store: S3Store, tmp_path: Path) -> None:
    put(store, "a/b/c")
    with pytest.raises(S3Error) as error:
        store.delete_bucket("b-1")
    assert code(error) == "BucketNotEmpty"
    store.delete("b-1", "a/b/c")
    assert list((tmp_path / "s3" / "b-1").iterdir()) == []
    store.delete_bucket("b-1")
    assert not store.bucket_exists("b-1")


def test_an_older_moto_snapshots_buckets_move_into_the_store(tmp_path: Path) -> None:
    directory = tmp_path / "snapshot"
    directory.mkdir()
    (directory / "object-0.bin").write_bytes(b"v")
    index = {
        "tables": [],
        "buckets": [
            {
                "name": "kept",
                "objects": [
                    {"key": "k", "file": "object-0.bin", "content_type": "image/png", "metadata": {"a": "1"}},
                    {"key": "../escape", "file": "object-0.bin", "content_type": None, "metadata": {}},
                ],
            }
        ],
    }
    (directory / "snapshot.json").write_text(json.dumps(index))
    store = S3Store(tmp_path / "s3")
    counts = snapshot.restore(None, store, directory)
    assert counts["buckets"] == 1
    info = store.head("kept", "k")
    assert info.headers == {"content-type": "image/png", "x-amz-meta-a": "1"}
    assert list(store.keys("kept", "")) == ["k"]  # the bad key left out, nothing outside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3", "snapshot"]
