"""The local S3's objects on disk, in the layout s3rver used (a data dir written by an earlier
version reads as it is): `<bucket>/<key>._S3rver_object` with `._S3rver_metadata.json` (content
type, x-amz-meta-*) and `._S3rver_object.md5` (the ETag) beside it; multipart uploads in
`<bucket>/._S3rver_uploads/<upload id>/`.

Every name that becomes a path is checked here, whatever the caller checked before: bucket
names by S3's rules, keys segment by segment (no `.`, `..`, empty segment or NUL), upload ids
as 32 hexadecimal digits, part numbers as 1-10000. Files are written to a temporary name in
the data dir and renamed, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from openlookout.core.s3_names import bucket_name_problem, key_problem

OBJECT = "._S3rver_object"
METADATA = "._S3rver_metadata.json"
MD5 = "._S3rver_object.md5"
UPLOADS = "._S3rver_uploads"
TEMPORARY = ".incoming"  # under the store's root: no bucket name starts with a dot
CHUNK = 256 * 1024
MAX_PART_NUMBER = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
    "expires",
)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
MAX_SEGMENT_BYTES = 255 - len(METADATA)  # a file name's limit, less the longest suffix


class S3Error(Exception):
    """An S3 error: its code, HTTP status and message, as S3 would send them."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def invalid(message: str) -> S3Error:
    return S3Error("InvalidArgument", 400, message)


def check_bucket(bucket: str) -> None:
    problem = bucket_name_problem(bucket)
    if problem:
        raise S3Error("InvalidBucketName", 400, f"The specified bucket is not valid: the name {problem}.")


def check_key(key: str, what: str = "object key") -> None:
    """Keys (and key prefixes) become paths: refused when a segment could leave their folder."""
    problem = key_problem(key)
    if problem is None and ("//" in key or key.startswith("/")):
        problem = "contains an empty path segment"
    if problem is None and "._S3rver_" in key:
        problem = "contains '._S3rver_', the local store's own file suffix"
    if problem is None and any(len(part.encode()) > MAX_SEGMENT_BYTES for part in key.split("/")):
        problem = f"has a path segment longer than {MAX_SEGMENT_BYTES} bytes, more than a file name can hold"
    if problem:
        code = "KeyTooLongError" if problem.startswith("is longer") else "InvalidArgument"
        raise S3Error(code, 400, f"The {what} {problem}.")


def check_upload_id(upload_id: str) -> None:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise invalid(f"The upload id {upload_id!r} is not one this service issued (32 hexadecimal digits).")


def check_part_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_NUMBER:
        raise invalid(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.")
    return int(text)


@dataclass
class ObjectInfo:
    key: str
    size: int
    etag: str  # without quotes
    modified: float  # epoch seconds
    headers: dict[str, str] = field(default_factory=dict)  # STORED_HEADERS and x-amz-meta-*


@dataclass(frozen=True)
class Part:
    number: int
    etag: str  # without quotes


class S3Store:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming = self.root / TEMPORARY
        shutil.rmtree(self.incoming, ignore_errors=True)  # what a crash left half-written
        self.incoming.mkdir()
        # An object is three files: renamed into place (or removed) together, so no reader or
        # concurrent writer pairs one object's bytes with another's metadata or ETag.
        self._swap = threading.Lock()

    # ------------------------------------------------------------ paths (every one checked)

    def bucket_dir(self, bucket: str) -> Path:
        check_bucket(bucket)
        return self.root / bucket

    def _existing_bucket(self, bucket: str) -> Path:
        path = self.bucket_dir(bucket)
        if not path.is_dir():
            raise S3Error("NoSuchBucket", 404, f"The specified bucket {bucket} does not exist.")
        return path

    def _object_base(self, bucket: str, key: str) -> str:
        """The object's path without its suffix; key "a/b/" is "a/b/" + suffix, as s3rver had it
        (a string: a Path would drop the trailing slash and make "a/" the object "a")."""
        check_key(key)
        *folders, name = key.split("/")
        return os.path.join(self._existing_bucket(bucket), *folders, name)

    def _upload_dir(self, bucket: str, upload_id: str) -> Path:
        check_upload_id(upload_id)
        return self._existing_bucket(bucket) / UPLOADS / upload_id

    def _temporary(self) -> Path:
        return self.incoming / secrets.token_hex(12)

    # ------------------------------------------------------------ buckets

    def list_buckets(self) -> list[tuple[str, float]]:
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and bucket_name_problem(entry.name) is None:
                found.append((entry.name, entry.stat().st_mtime))
        return found

    def bucket_exists(self, bucket: str) -> bool:
        return self.bucket_dir(bucket).is_dir()

    def create_bucket(self, bucket: str) -> bool:
        """Creates the bucket; False when it was there already."""
        path = self.bucket_dir(bucket)
        try:
            path.mkdir()
            return True
        except FileExistsError:
            return False

    def delete_bucket(self, bucket: str) -> None:
        path = self._existing_bucket(bucket)
        uploads = path / UPLOADS
        if any(self.keys(bucket, "")) or (uploads.is_dir() and any(uploads.iterdir())):
            raise S3Error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty.")
        shutil.rmtree(uploads, ignore_errors=True)
        shutil.rmtree(path)  # only empty folders are left

    # ------------------------------------------------------------ objects

    def head(self, bucket: str, key: str) -> ObjectInfo:
        info, stream = self._read(bucket, key)
        stream.close()
        return info

    def open(self, bucket: str, key: str) -> tuple[ObjectInfo, IO[bytes]]:
        """The object's description and its bytes, of one and the same version."""
        return self._read(bucket, key)

    def _read(self, bucket: str, key: str) -> tuple[ObjectInfo, IO[bytes]]:
        base = self._object_base(bucket, key)
        with self._swap:  # the three files of one version (an open file keeps its bytes after a swap)
            try:
                stream = open(f"{base}{OBJECT}", "rb")  # noqa: SIM115 - the caller streams it
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise S3Error("NoSuchKey", 404, "The specified key does not exist.") from None
            try:
                stat = os.fstat(stream.fileno())
                info = ObjectInfo(key, stat.st_size, self._etag(base), stat.st_mtime, self._headers(base))
            except BaseException:
                stream.close()
                raise
        return info, stream

    def _etag(self, base: str) -> str:
        try:
            return Path(f"{base}{MD5}").read_text().strip()
        except FileNotFoundError:  # s3rver wrote it lazily: compute and keep it, as it did
            digest = _md5_of(Path(f"{base}{OBJECT}"))
            Path(f"{base}{MD5}").write_text(digest)
            return digest

    @staticmethod
    def _headers(base: str) -> dict[str, str]:
        try:
            stored = json.loads(Path(f"{base}{METADATA}").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {
            str(k): str(v) for k, v in stored.items() if k in STORED_HEADERS or k.startswith("x-amz-meta-")
        }

    def put(self, bucket: str, key: str, body: Iterable[bytes], headers: dict[str, str]) -> ObjectInfo:
        """Stores the object from its body's chunks; `headers` are what is kept with it."""
        base = self._object_base(bucket, key)
        temporary = self._temporary()
        try:
            digest = _write(temporary, body)
            self._install(base, temporary, digest, headers)
        finally:
            temporary.unlink(missing_ok=True)
        return self.head(bucket, key)

    def _install(self, base: str, data: Path, etag: str, headers: dict[str, str]) -> None:
        """Moves a finished temporary file into place with its metadata and ETag files."""
        kept = {k: v for k, v in headers.items() if k in STORED_HEADERS or k.startswith("x-amz-meta-")}
        metadata, md5 = self._temporary(), self._temporary()
        metadata.write_text(json.dumps(kept, indent=2))
        md5.write_text(etag)
        for attempt in range(3):  # a delete may remove the folder as it empties: make it again
            os.makedirs(os.path.dirname(base), exist_ok=True)
            try:
                with self._swap:
                    os.replace(metadata, f"{base}{METADATA}")
                    os.replace(md5, f"{base}{MD5}")
                    os.replace(data, f"{base}{OBJECT}")
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def copy(
        self, source: tuple[str, str], bucket: str, key: str, headers: dict[str, str] | None
    ) -> ObjectInfo:
        """Copies source (bucket, key) to bucket/key; `headers` None keeps the source's metadata."""
        info, stream = self.open(*source)
        with stream:
            temporary = self._temporary()
            try:
                digest = _write(temporary, iter(lambda: stream.read(CHUNK), b""))
                kept = info.headers if headers is None else headers
                self._install(self._object_base(bucket, key), temporary, digest, kept)
            finally:
                temporary.unlink(missing_ok=True)
        return self.head(bucket, key)

    def delete(self, bucket: str, key: str) -> None:
        base = self._object_base(bucket, key)
        with self._swap:
            for suffix in (OBJECT, MD5, METADATA):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    os.unlink(f"{base}{suffix}")
        self._prune(Path(os.path.dirname(base)), self.root / bucket)

    @staticmethod
    def _prune(folder: Path, bucket_dir: Path) -> None:
        """Removes the folders a delete left empty, up to the bucket's own."""
        while folder != bucket_dir and bucket_dir in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): stop
                return
            folder = folder.parent

    # ------------------------------------------------------------ listing

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix`, in S3's order (UTF-8 bytes, i.e. code points)."""
        bucket_dir = self._existing_bucket(bucket)
        folder_part = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if folder_part:
            check_key(folder_part + "/", "prefix")
        start = bucket_dir.joinpath(*folder_part.split("/")) if folder_part else bucket_dir
        found = [k for k in _walk(start, bucket_dir) if k.startswith(prefix)]
        return iter(sorted(found))

    # ------------------------------------------------------------ multipart uploads

    def create_upload(self, bucket: str, key: str, headers: dict[str, str]) -> str:
        check_key(key)
        upload_id = secrets.token_hex(16)
        folder = self._upload_dir(bucket, upload_id)
        folder.mkdir(parents=True)
        (folder / "key").write_text(key)
        (folder / "metadata").write_text(json.dumps(headers))
        return upload_id

    def upload(self, bucket: str, key: str, upload_id: str) -> Path:
        """The upload's folder; NoSuchUpload unless it was created for this very key."""
        folder = self._upload_dir(bucket, upload_id)
        try:
            stored_key = (folder / "key").read_text()
        except (FileNotFoundError, NotADirectoryError):
            stored_key = None
        if stored_key != key:
            raise S3Error(
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, "
                "or the upload may have been aborted or completed.",
            )
        return folder

    def put_part(self, bucket: str, key: str, upload_id: str, number: int, body: Iterable[bytes]) -> str:
        folder = self.upload(bucket, key, upload_id)
        temporary = self._temporary()
        try:
            digest = _write(temporary, body)
            (folder / f"{number}.md5").write_text(digest)
            os.replace(temporary, folder / str(number))
        finally:
            temporary.unlink(missing_ok=True)
        return digest

    def complete_upload(self, bucket: str, key: str, upload_id: str, parts: list[Part]) -> ObjectInfo:
        folder = self.upload(bucket, key, upload_id)
        _check_parts(folder, parts)
        headers = json.loads((folder / "metadata").read_text())
        digests = b"".join(bytes.fromhex(p.etag) for p in parts)
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
        temporary = self._temporary()
        try:
            with open(temporary, "wb") as out:
                for part in parts:
                    with open(folder / str(part.number), "rb") as stream:
                        shutil.copyfileobj(stream, out, CHUNK)
            self._install(self._object_base(bucket, key), temporary, etag, headers)
        finally:
            temporary.unlink(missing_ok=True)
        shutil.rmtree(folder)
        return self.head(bucket, key)

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        shutil.rmtree(self.upload(bucket, key, upload_id))


def _check_parts(folder: Path, parts: list[Part]) -> None:
    if not parts:
        raise S3Error("MalformedXML", 400, "The XML you provided did not list any part.")
    numbers = [p.number for p in parts]
    if numbers != sorted(set(numbers)):
        raise S3Error("InvalidPartOrder", 400, "The list of parts was not in ascending order.")
    for index, part in enumerate(parts):
        path = folder / str(part.number)
        try:
            stored = (folder / f"{part.number}.md5").read_text()
        except FileNotFoundError:
            stored = None
        if stored != part.etag:
            raise S3Error(
                "InvalidPart", 400, f"Part {part.number} was not uploaded, or its ETag does not match."
            )
        if index < len(parts) - 1 and path.stat().st_size < MIN_PART_BYTES:
            raise S3Error(
                "EntityTooSmall",
                400,
                f"Part {part.number} is smaller than the minimum of 5 MiB (only the last may be).",
            )


def _walk(folder: Path, bucket_dir: Path) -> Iterator[str]:
    """Keys of the object files under `folder` (the uploads folder skipped)."""
    root = str(bucket_dir) + os.sep
    for current, folders, files in os.walk(folder):
        if current == str(bucket_dir) and UPLOADS in folders:
            folders.remove(UPLOADS)
        for name in files:
            if name.endswith(OBJECT):
                path = os.path.join(current, name[: -len(OBJECT)])
                yield path[len(root) :] if path.startswith(root) else ""


def _write(path: Path, body: Iterable[bytes]) -> str:
    """Writes the chunks to `path`; returns their MD5 in hex."""
    digest = hashlib.md5()
    with open(path, "wb") as out:
        for chunk in body:
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["ObjectInfo", "Part", "S3Error", "S3Store", "check_bucket", "check_key", "check_part_number"]
