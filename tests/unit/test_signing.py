"""The signature a user's client sends must be the one API Gateway (IAM auth) accepts.

API Gateway recomputes SigV4 for the service `execute-api`; botocore's own SigV4Auth is the
reference implementation of that computation.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openlookout.client import sign_for_api_gateway, use_api_gateway_signing

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"


class Captured(Exception):
    def __init__(self, request: AWSRequest) -> None:
        self.request = request


def _signed_request(register: bool, call: str = "list_projects", **params) -> AWSRequest:
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        aws_session_token=CREDENTIALS.token,
        region_name="eu-west-1",
    )
    client = session.client("lookoutvision", endpoint_url=ENDPOINT)
    if register:
        client.meta.events.register("before-sign.lookoutvision", sign_for_api_gateway)

    def capture(request: AWSRequest, **_) -> None:
        raise Captured(request)

    client.meta.events.register("before-send.lookoutvision", capture)
    with pytest.raises(Captured) as caught:
        getattr(client, call)(**params)
    return caught.value.request


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _reference_signature(request: AWSRequest, service: str) -> str:
    """Verifies as API Gateway does: re-signs the headers the client declared signed, same timestamp."""
    sent = _text(request.headers["Authorization"])
    signed = sent.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: _text(v) for k, v in request.headers.items() if k.lower() in signed}
    copy = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
    amz_date = headers["X-Amz-Date"]
    del copy.headers["X-Amz-Security-Token"]
    copy.context["timestamp"] = amz_date
    signer = SigV4Auth(CREDENTIALS, service, "eu-west-1")
    signer._timestamp = lambda: amz_date  # type: ignore[method-assign]
    signer.add_auth(copy)
    return _text(copy.headers["Authorization"])


@pytest.mark.parametrize(
    ("call", "params"),
    [
        ("list_projects", {}),
        ("create_project", {"ProjectName": "p", "ClientToken": "t-1"}),
        ("list_tags_for_resource", {"ResourceArn": "arn:aws:lookoutvision:eu-west-1:123456789012:model/p/1"}),
        ("untag_resource", {"ResourceArn": "arn:aws:lookoutvision:eu-west-1:1:model/p/1", "TagKeys": ["a"]}),
    ],
)
def test_registered_client_signs_exactly_as_api_gateway_verifies(call: str, params: dict):
    request = _signed_request(True, call, **params)
    sent = _text(request.headers["Authorization"])
    assert "/eu-west-1/execute-api/aws4_request" in sent
    assert sent == _reference_signature(request, "execute-api")


def test_unregistered_client_signature_is_refused_by_api_gateway():
    request = _signed_request(False)
    sent = _text(request.headers["Authorization"])
    assert "/lookoutvision/aws4_request" in sent
    assert sent != _reference_signature(request, "execute-api")


def test_use_api_gateway_signing_registers_the_handler():
    client = boto3.client("lookoutvision", region_name="eu-west-1", endpoint_url=ENDPOINT)
    assert use_api_gateway_signing(client) is client
