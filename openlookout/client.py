"""Client-side helpers for boto3 users of a deployed OpenLookout stack.

API Gateway's IAM authorization checks SigV4 signatures made for the service `execute-api`,
while botocore signs `lookoutvision` requests for `lookoutvision`. One event handler on the
client fixes the signing name, and nothing else about the request changes:

    lv = boto3.client("lookoutvision", endpoint_url=ApiEndpoint)
    lv.meta.events.register("before-sign.lookoutvision", sign_for_api_gateway)

`sign_for_api_gateway` is a plain function (copy it if you do not want this package on the
client): it sets the signing name in the request's signing context, which botocore's signer
reads before it signs.
"""

from __future__ import annotations

from typing import Any

API_GATEWAY_SIGNING_NAME = "execute-api"


def sign_for_api_gateway(request: Any, **_: Any) -> None:
    request.context.setdefault("signing", {})["signing_name"] = API_GATEWAY_SIGNING_NAME


def use_api_gateway_signing(client: Any) -> Any:
    """Registers `sign_for_api_gateway` on a lookoutvision client and returns the client."""
    client.meta.events.register("before-sign.lookoutvision", sign_for_api_gateway)
    return client
