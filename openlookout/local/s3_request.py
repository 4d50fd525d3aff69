"""One S3 request as the local S3's operations read it (parsed by s3_api, answered by s3_operations)."""

from __future__ import annotations

from dataclasses import dataclass, field

from openlookout.local.wsgi import WsgiEnviron


@dataclass
class S3Request:
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    environ: WsgiEnviron = field(repr=False)

    @property
    def target(self) -> str:
        return "object" if self.key else "bucket" if self.bucket else "service"

    @property
    def resource(self) -> str:
        return "/" + "/".join(p for p in (self.bucket, self.key) if p)
