"""`make reliability`'s red-team section: attacks on a running `openlookout serve`, one line each,
and three totals that must be 0: files touched outside the data dir, unsigned (or cross-site)
calls accepted, active user content served.

A case is a function registered with `@case(area, name)`: it gets a `Target` (the server, the
folder beside its data dir that no request may reach, and a signed boto3 S3 client) and returns
the counts it adds, e.g. `{"unsigned_accepted": 1}`. Files outside the data dir are also compared
before and after every case. Other areas (the edge agent's shared memory and socket, packaging's
name clash, `openlookout report`'s output paths) add their cases the same way, in this module or
in one that imports `case` before `run` is called.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redteam_edge  # bench/, beside this file

from tests.contract.conftest import LocalServer, client_for
from tests.contract.signing import Answer, send

TOTALS = ("files_outside", "unsigned_accepted", "active_content", "defences_failed")
BUCKET = "red-team"


@dataclass
class Target:
    server: LocalServer
    outside: Path  # beside the data dir: planted files no request may read, write or delete
    s3: Any
    model: tuple[str, str, str] | None = None  # a trained model's project, version and images bucket
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed by run()
    edge: redteam_edge.EdgeRig | None = None

    @property
    def endpoint(self) -> str:
        return self.server.endpoint_url


Case = Callable[[Target], dict[str, int]]
CASES: list[tuple[str, str, Case]] = []


def case(area: str, name: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES.append((area, name, function))
        return function

    return register


def accepted(answer: Answer) -> dict[str, int]:
    return {"unsigned_accepted": int(answer.status < 400)}


def plant(target: Target) -> None:
    """Files an attacker aims at, named as s3rver named its files (what a path bug would reach)."""
    (target.outside / "victim").mkdir(parents=True, exist_ok=True)
    (target.outside / "victim" / "keep.txt").write_text("keep")
    (target.outside / "secret._S3rver_object").write_text("secret")
    (target.outside / "doomed._S3rver_object").write_text("doomed")


def _relative(target: Target, path: Path, start: str = "") -> str:
    return os.path.relpath(path, target.server.data_dir / "s3" / BUCKET / start)


# ---------------------------------------------------------------- local endpoint: who may call


@case("local endpoint", "unsigned ListProjects")
def unsigned_api(target: Target) -> dict[str, int]:
    return accepted(send(target.endpoint, "GET", "/2020-11-20/projects", service=None))


@case("local endpoint", "text/plain CreateProject from another origin")
def cross_site_post(target: Target) -> dict[str, int]:
    body = b'{"ProjectName": "red-team-csrf"}'
    headers = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    return accepted(send(target.endpoint, "POST", "/2020-11-20/projects", body, headers, service=None))


@case("local endpoint", "signed call from another origin")
def foreign_origin(target: Target) -> dict[str, int]:
    headers = {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
    return accepted(send(target.endpoint, "GET", "/2020-11-20/projects", b"", headers, "lookoutvision"))


@case("local endpoint", "DNS rebinding (Host: evil.example)")
def rebinding(target: Target) -> dict[str, int]:
    headers = {"Host": "evil.example:" + str(target.server.port)}
    return accepted(send(target.endpoint, "GET", "/2020-11-20/projects", b"", headers, "lookoutvision"))


@case("local endpoint", "S3 with ?AWSAccessKeyId=x only")
def s3_key_only(target: Target) -> dict[str, int]:
    return accepted(send(target.endpoint, "GET", f"/{BUCKET}?list-type=2&AWSAccessKeyId=x", service=None))


@case("local endpoint", "S3 presigned POST (a form can send it)")
def presigned_post(target: Target) -> dict[str, int]:
    url = target.s3.generate_presigned_url("create_multipart_upload", Params={"Bucket": BUCKET, "Key": "p"})
    return accepted(send(target.endpoint, "POST", url[len(target.endpoint) :], service=None))


@case("local endpoint", "S3 POST object form")
def post_object(target: Target) -> dict[str, int]:
    fields = (
        ("key", "", "form.html"),
        ("Content-Type", "", "text/html"),
        ("file", '; filename="f"', "<script>"),
    )
    parts = [
        f'--b\r\nContent-Disposition: form-data; name="{n}"{extra}\r\n\r\n{v}\r\n' for n, extra, v in fields
    ]
    body = ("".join(parts) + "--b--\r\n").encode()
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    answer = send(target.endpoint, "POST", f"/{BUCKET}?AWSAccessKeyId=x", body, headers, service=None)
    return accepted(answer)


@case("local endpoint", "DynamoDB Local's own port without the key")
def backend_port(target: Target) -> dict[str, int]:
    from tests.contract.test_hardening import _listening

    assert target.server.process is not None
    own = f"127.0.0.1:{target.server.port}"
    ports = [a for a in _listening([target.server.process.pid, *target.server.child_pids()]) if a != own]
    headers = {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"}
    answers = [send(f"http://{a}", "POST", "/", b"{}", headers, "dynamodb") for a in ports]
    return {"unsigned_accepted": sum(a.status < 400 for a in answers)}


# ---------------------------------------------------------------- local S3: names that leave the data dir


@case("local S3", "uploadId/partNumber path (PUT part, then Complete)")
def upload_id_path(target: Target) -> dict[str, int]:
    upload = quote(_relative(target, target.outside / "victim", "._S3rver_uploads"), safe="")
    for part in ("key", "metadata", "1", "evil.sh"):
        send(target.endpoint, "PUT", f"/{BUCKET}/k?uploadId={upload}&partNumber={part}", b"{}")
    etag = hashlib.md5(b"{}").hexdigest()
    part = f'<Part><PartNumber>1</PartNumber><ETag>"{etag}"</ETag></Part>'
    body = f"<CompleteMultipartUpload>{part}</CompleteMultipartUpload>"
    send(target.endpoint, "POST", f"/{BUCKET}/k?uploadId={upload}", body.encode())
    return {}  # whatever it did shows in the files outside


@case("local S3", "x-amz-copy-source outside the bucket")
def copy_source(target: Target) -> dict[str, int]:
    source = f"/{BUCKET}/{_relative(target, target.outside / 'secret')}"
    send(target.endpoint, "PUT", f"/{BUCKET}/stolen", b"", {"x-amz-copy-source": quote(source)})
    got = send(target.endpoint, "GET", f"/{BUCKET}/stolen")
    return {"files_outside": int(got.status == 200 and got.body == b"secret")}  # read counts as touched


@case("local S3", "DeleteObjects key outside the bucket")
def delete_objects(target: Target) -> dict[str, int]:
    key = _relative(target, target.outside / "doomed")
    body = f"<Delete><Object><Key>{key}</Key></Object></Delete>".encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    send(target.endpoint, "POST", f"/{BUCKET}?delete", body, {"Content-MD5": md5})
    return {}


@case("local S3", "key ../../ and bucket ..")
def key_paths(target: Target) -> dict[str, int]:
    send(target.endpoint, "PUT", f"/{BUCKET}/{quote(_relative(target, target.outside / 'x'))}", b"x")
    send(target.endpoint, "DELETE", "/" + quote(_relative(target, target.outside, ".."), safe=""))
    return {}


# ---------------------------------------------------------------- user content on the console's origin


@case("local S3", "HTML/SVG objects served inert")
def active_objects(target: Target) -> dict[str, int]:
    active = 0
    for key, content_type in (
        ("page.html", "text/html"),
        ("image.svg", "image/svg+xml"),
        ("x.xml", "text/xml"),
    ):
        target.s3.put_object(
            Bucket=BUCKET, Key=key, Body=b"<script>alert(1)</script>", ContentType=content_type
        )
        url = target.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})
        headers = send(target.endpoint, "GET", url[len(target.endpoint) :], service=None).headers
        inert = (
            headers.get("x-content-type-options") == "nosniff"
            and "sandbox" in headers.get("content-security-policy", "")
            and headers.get("content-disposition", "").startswith("attachment")
        )
        active += not inert
    return {"active_content": active}


@case("local endpoint", "console framed by another page")
def console_framing(target: Target) -> dict[str, int]:
    headers = send(target.endpoint, "GET", "/console/", service=None).headers
    return {"active_content": int("frame-ancestors 'none'" not in headers.get("content-security-policy", ""))}


# ---------------------------------------------------------------- the edge agent, the CLI, packaging


def _counts(attack: redteam_edge.Attack) -> dict[str, int]:
    return {"files_outside": len(attack.touched_outside), "defences_failed": int(not attack.passed)}


def _edge_case(attack: Callable[[redteam_edge.EdgeRig], redteam_edge.Attack]) -> Case:
    def run_on_the_rig(target: Target) -> dict[str, int]:
        if target.edge is None:  # one agent (with a small model of its own) for every edge case
            target.edge = target.resources.enter_context(redteam_edge.edge_rig())
        return _counts(attack(target.edge))

    return run_on_the_rig


for _attack in redteam_edge.EDGE_ATTACKS:
    case("edge agent", _attack.__name__.replace("_", " "))(_edge_case(_attack))


@case("openlookout report", "keys that lead out of DIR")
def report_keys(target: Target) -> dict[str, int]:
    assert target.model is not None, "prepare(server, model=...) names a trained model"
    project, version, _ = target.model
    # The command's own folder is not beside the data dir: writing its report there is its job.
    work = Path(target.resources.enter_context(tempfile.TemporaryDirectory(prefix="openlookout-report-")))
    return _counts(redteam_edge.report_key_escape(target.endpoint, project, version, work))


@case("packaging", "a second job for a published component version")
def packaging_version_clash(target: Target) -> dict[str, int]:
    assert target.model is not None, "prepare(server, model=...) names a trained model"
    project, version, bucket = target.model
    lookoutvision = client_for(target.server, "lookoutvision")
    return _counts(redteam_edge.packaging_clash(lookoutvision, target.s3, project, version, bucket))


# ---------------------------------------------------------------- running them


def _outside_files(server: LocalServer) -> dict[str, bytes]:
    root, data = server.data_dir.parent, server.data_dir
    found = {}
    for path in root.rglob("*"):
        if data in path.parents or path == data or path.name == "serve.log" or not path.is_file():
            continue
        found[str(path)] = path.read_bytes()
    return found


def prepare(server: LocalServer, model: tuple[str, str, str]) -> Target:
    """The files and the bucket the cases aim at; call it before taking stock of the files outside.
    `model`: a trained model's project, version and images bucket (report and packaging cases)."""
    target = Target(server, server.data_dir.parent / "outside-red-team", client_for(server, "s3"), model)
    plant(target)
    target.s3.create_bucket(Bucket=BUCKET)
    return target


def run(target: Target, report: Callable[..., None]) -> dict[str, int]:
    """Runs every case; prints a line each and returns the totals."""
    totals: Counter[str] = Counter({name: 0 for name in TOTALS})
    with target.resources:
        for area, name, attack in CASES:
            totals.update(_run_case(target, area, name, attack, report))
    return {name: totals[name] for name in TOTALS}


def _run_case(
    target: Target, area: str, name: str, attack: Case, report: Callable[..., None]
) -> Counter[str]:
    """One case, with the files outside the data dir compared before and after it; prints its line."""
    before = _outside_files(target.server)
    try:
        counts = Counter(attack(target))
    except OSError:  # no answer at all: refused
        counts = Counter()
    after = _outside_files(target.server)
    counts["files_outside"] += sum(before.get(k) != after.get(k) for k in before.keys() | after.keys())
    report(f"red team: {area}: {name}", not any(counts[t] for t in TOTALS), **{t: counts[t] for t in TOTALS})
    return counts
