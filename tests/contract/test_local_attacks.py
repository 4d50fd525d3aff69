"""Issue 21's reproductions against `openlookout serve` with its default flags, over real HTTP:
the local S3 answers an allow-list of operations and parameters (each one that names storage is
checked like a key), every call carries a signature, and neither another origin nor another host
name (DNS rebinding) reaches the service."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.contract.conftest import LocalServer, client_for, free_port
from tests.contract.signing import Answer, send

pytestmark = pytest.mark.contract

BUCKET = "attacks"
UNKNOWN_UPLOAD = "0123456789abcdef" * 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    if os.environ.get("OPENLOOKOUT_ENDPOINT"):
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")
    local = LocalServer(tmp_path_factory.mktemp("attacks") / "data", free_port())
    local.start()
    client_for(local, "s3").create_bucket(Bucket=BUCKET)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def outside(server: LocalServer) -> Iterator[Path]:
    """A folder beside the data dir holding files an attacker would like to reach."""
    folder = server.data_dir.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "victim").mkdir(exist_ok=True)
    (folder / "victim" / "keep.txt").write_text("keep")
    # Named as s3rver names its files, so a path that reaches here finds "objects".
    (folder / "secret._S3rver_object").write_text("secret")
    (folder / "doomed._S3rver_object").write_text("doomed")
    before = _tree(server)
    yield folder
    assert _tree(server) == before, "files outside the data dir changed"


def _tree(server: LocalServer) -> dict[str, bytes]:
    root, data = server.data_dir.parent, server.data_dir
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and data not in p.parents and p.name != "serve.log"
    }


def _bucket_dir(server: LocalServer) -> Path:
    return server.data_dir / "s3" / BUCKET


def _code(answer: Answer) -> str:
    root = ElementTree.fromstring(answer.body)
    return root.findtext("Code") or ""


def _refused(answer: Answer, *codes: str) -> None:
    """An S3 error in S3's XML shape, with one of `codes`."""
    assert 400 <= answer.status < 600, (answer.status, answer.text)
    assert answer.headers.get("content-type", "").startswith("application/xml"), answer.headers
    assert _code(answer) in codes, answer.text


# ---------------------------------------------------------------- item 1: the S3 allow-list


@pytest.mark.parametrize("signed", [False, True], ids=["issue-query", "sigv4"])
def test_upload_id_and_part_number_name_no_file(server: LocalServer, outside: Path, signed: bool) -> None:
    """s3rver joined uploadId and partNumber onto its folder: PUT wrote outside/victim/<part>, and
    CompleteMultipartUpload then deleted outside/victim recursively."""
    uploads = _bucket_dir(server) / "._S3rver_uploads"
    upload_id = quote(os.path.relpath(outside / "victim", uploads), safe="")
    auth = "" if signed else "AWSAccessKeyId=x&"
    service = "s3" if signed else None
    for part, body in (("key", b"k"), ("metadata", b"{}"), ("1", b"data"), ("evil.sh", b"#!/bin/sh\n")):
        answer = send(
            server.endpoint_url,
            "PUT",
            f"/{BUCKET}/k?{auth}uploadId={upload_id}&partNumber={part}",
            body,
            service=service,
        )
        _refused(answer, "AccessDenied", "InvalidArgument", "NoSuchUpload")
    etag = hashlib.md5(b"data").hexdigest()
    complete = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f'<ETag>"{etag}"</ETag></Part></CompleteMultipartUpload>'
    ).encode()
    answer = send(
        server.endpoint_url, "POST", f"/{BUCKET}/k?{auth}uploadId={upload_id}", complete, service=service
    )
    _refused(answer, "AccessDenied", "InvalidArgument", "NoSuchUpload")
    assert (outside / "victim" / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("signed", [False, True], ids=["issue-query", "sigv4"])
def test_post_object_forms_are_refused(server: LocalServer, outside: Path, signed: bool) -> None:
    """A browser-form upload (POST object) with a `key` field that leaves the bucket."""
    key = os.path.relpath(outside / "form", _bucket_dir(server))
    boundary = "xyzzy"
    fields = [("key", key), ("Content-Type", "text/html"), ("file", "<script>alert(1)</script>")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        + ('; filename="x.html"' if name == "file" else "")
        + f"\r\n\r\n{value}\r\n"
        for name, value in fields
    )
    body += f"--{boundary}--\r\n"
    target = f"/{BUCKET}" + ("" if signed else "?AWSAccessKeyId=x")
    answer = send(
        server.endpoint_url,
        "POST",
        target,
        body.encode(),
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        service="s3" if signed else None,
    )
    _refused(answer, "AccessDenied", "NotImplemented", "InvalidArgument")


def test_copy_source_is_checked_like_keys(server: LocalServer, outside: Path) -> None:
    s3 = client_for(server, "s3")
    source = os.path.relpath(outside / "secret", _bucket_dir(server))
    with pytest.raises(ClientError) as error:
        s3.copy_object(Bucket=BUCKET, Key="stolen", CopySource={"Bucket": BUCKET, "Key": source})
    assert error.value.response["Error"]["Code"] == "InvalidArgument"
    assert "copy source" in error.value.response["Error"]["Message"].lower()
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="stolen")
    # The bucket of the source is checked too.
    with pytest.raises(ClientError) as error:
        s3.copy_object(Bucket=BUCKET, Key="stolen", CopySource={"Bucket": "..", "Key": "outside/secret"})
    assert error.value.response["Error"]["Code"] == "InvalidBucketName"


def test_delete_objects_keys_are_checked_before_anything_is_deleted(
    server: LocalServer, outside: Path
) -> None:
    s3 = client_for(server, "s3")
    s3.put_object(Bucket=BUCKET, Key="kept", Body=b"kept")
    doomed = os.path.relpath(outside / "doomed", _bucket_dir(server))
    with pytest.raises(ClientError) as error:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "kept"}, {"Key": doomed}]})
    assert error.value.response["Error"]["Code"] == "InvalidArgument"
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"kept"  # nothing half-done


@pytest.mark.parametrize(
    ("method", "target", "headers", "code"),
    [
        ("PUT", f"/{BUCKET}?acl", {}, "NotImplemented"),
        ("PUT", f"/{BUCKET}?cors", {}, "NotImplemented"),
        ("PUT", f"/{BUCKET}?policy", {}, "NotImplemented"),
        ("GET", f"/{BUCKET}?uploads", {}, "NotImplemented"),
        ("GET", f"/{BUCKET}?website", {}, "NotImplemented"),
        ("PUT", f"/{BUCKET}/k?tagging", {}, "NotImplemented"),
        ("GET", f"/{BUCKET}/k?response-content-type=text%2Fhtml", {}, "NotImplemented"),
        ("PUT", f"/{BUCKET}/k", {"x-amz-website-redirect-location": "http://e.example"}, "NotImplemented"),
        ("PUT", f"/{BUCKET}/k", {"x-amz-acl": "public-read"}, "NotImplemented"),
        ("PUT", f"/{BUCKET}/k?partNumber=1&uploadId={UNKNOWN_UPLOAD}", {}, "NoSuchUpload"),
        ("PUT", f"/{BUCKET}/k?partNumber=0&uploadId={UNKNOWN_UPLOAD}", {}, "InvalidArgument"),
        ("PUT", f"/{BUCKET}/k?partNumber=1&uploadId=0123", {}, "InvalidArgument"),
        ("PUT", f"/{BUCKET}/k?partNumber=1&uploadId=a%2F..", {}, "InvalidArgument"),
        ("GET", f"/{BUCKET}/k?versionId=3HL4kqtJlcpXroDTDmJ%2BrmSpXd3dIbrHY", {}, "InvalidArgument"),
    ],
)
def test_only_the_allow_list_reaches_storage(
    server: LocalServer, outside: Path, method: str, target: str, headers: dict[str, str], code: str
) -> None:
    answer = send(server.endpoint_url, method, target, b"x" if method == "PUT" else b"", headers)
    _refused(answer, code)
    message = ElementTree.fromstring(answer.body).findtext("Message") or ""
    assert message  # says what is not supported, in words


# ---------------------------------------------------------------- item 2 and 3: who may call


def test_unsigned_calls_are_refused_in_each_clients_shape(server: LocalServer) -> None:
    answer = send(server.endpoint_url, "GET", "/2020-11-20/projects", service=None)
    assert answer.status == 403, answer.text
    assert answer.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    s3_answer = send(server.endpoint_url, "GET", f"/{BUCKET}?list-type=2&AWSAccessKeyId=x", service=None)
    assert s3_answer.status == 403
    _refused(s3_answer, "AccessDenied")


def test_a_cross_site_text_plain_post_creates_nothing(server: LocalServer) -> None:
    """A web page can POST text/plain anywhere without a preflight: no signature, another Origin."""
    name = f"csrf-{os.urandom(3).hex()}"
    body = f'{{"ProjectName": "{name}"}}'.encode()
    for headers, service in (
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, None),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, "lookoutvision"),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, "lookoutvision"),
    ):
        answer = send(server.endpoint_url, "POST", "/2020-11-20/projects", body, headers, service)
        assert answer.status == 403, (headers, answer.text)
        assert answer.headers["content-type"] == "application/json"
    lookoutvision = client_for(server, "lookoutvision")
    with pytest.raises(ClientError) as error:
        lookoutvision.describe_project(ProjectName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # The console's own origin still works (what the browser sends for the page's own calls).
    own = {"Content-Type": "application/json", "Origin": server.endpoint_url, "Sec-Fetch-Site": "same-origin"}
    answer = send(server.endpoint_url, "POST", "/2020-11-20/projects", body, own, "lookoutvision")
    assert answer.status == 200, answer.text
    lookoutvision.delete_project(ProjectName=name)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "b.s3.amazonaws.com"]
)
def test_a_foreign_host_name_is_refused(server: LocalServer, host: str) -> None:
    """DNS rebinding: a page's own name, resolved to 127.0.0.1, arrives as the Host header."""
    foreign = {"Host": host}
    answer = send(server.endpoint_url, "GET", "/2020-11-20/projects", b"", foreign, "lookoutvision")
    assert answer.status == 403 and b"Host" in answer.body, answer.text
    answer = send(server.endpoint_url, "GET", f"/{BUCKET}?list-type=2", headers={"Host": host})
    _refused(answer, "AccessDenied")
    assert b"Host" in answer.body
    port = server.port
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        answer = send(server.endpoint_url, "GET", f"/{BUCKET}?list-type=2", headers={"Host": own})
        assert answer.status == 200, (own, answer.text)


def test_an_expired_presigned_url_is_refused(server: LocalServer) -> None:
    s3 = client_for(server, "s3")
    s3.put_object(Bucket=BUCKET, Key="presigned", Body=b"p")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presigned"}, ExpiresIn=1)
    time.sleep(2.1)
    answer = send(server.endpoint_url, "GET", url[len(server.endpoint_url) :], service=None)
    assert answer.status == 403 and b"expired" in answer.body, answer.text


@pytest.mark.parametrize("content_type", ["text/html", "image/svg+xml", "application/xhtml+xml", "text/xml"])
def test_user_objects_are_never_active_content(server: LocalServer, content_type: str) -> None:
    s3 = client_for(server, "s3")
    s3.put_object(Bucket=BUCKET, Key="page", Body=b"<script>alert(1)</script>", ContentType=content_type)
    for method in ("GET", "HEAD"):
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "page"})
        answer = send(server.endpoint_url, method, url[len(server.endpoint_url) :], service=None)
        assert answer.status == 200
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in answer.headers["content-security-policy"]


def test_images_stay_inline_but_sandboxed(server: LocalServer) -> None:
    """The console shows images by presigned URL in <img>: no attachment, still sandboxed."""
    s3 = client_for(server, "s3")
    s3.put_object(Bucket=BUCKET, Key="a.png", Body=b"\x89PNG\r\n", ContentType="image/png")
    answer = send(server.endpoint_url, "GET", f"/{BUCKET}/a.png")
    assert answer.status == 200 and "content-disposition" not in answer.headers
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_console_page_has_a_csp_and_no_framing(server: LocalServer) -> None:
    answer = send(server.endpoint_url, "GET", "/console/", service=None)
    assert answer.status == 200
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
