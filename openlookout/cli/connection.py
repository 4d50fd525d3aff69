"""Where the client commands send their calls: the `--endpoint-url` and `--region` every one of
them takes, and the lookoutvision and s3 clients of one run.

The commands talk to the service only through the Lookout for Vision API and S3, like any boto3
client, so they work against `openlookout serve` and a deployed stack alike. Credentials and region
come from the usual boto3 chain, with dummy keys filled in for a loopback endpoint.
"""

from __future__ import annotations

import argparse
from typing import Any

from openlookout.settings import DEFAULT_REGION, client_settings

LOOPBACK_PREFIXES = ("http://127.0.0.1", "http://localhost", "http://[::1]")


def connection_options() -> argparse.ArgumentParser:
    """The options of every client command (an argparse parent parser)."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    group.add_argument(
        "--endpoint-url",
        default=client_settings().endpoint_url,
        help="the service's endpoint (default: $AWS_ENDPOINT_URL; unset means AWS itself)",
    )
    group.add_argument("--region", default=None, help="AWS region (default: the boto3 chain, else us-east-1)")
    return options


def client_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    *,
    project: bool = True,
    version: str | None = None,
) -> argparse.ArgumentParser:
    """A client command's parser: the connection options, then PROJECT (and VERSION, with `version`
    as its help) when the command works on one."""
    parser = subparsers.add_parser(name, parents=[connection_options()], help=help, description=help)
    if project:
        parser.add_argument("project", help="project name")
    if version:
        parser.add_argument("version", help=version)
    return parser


def is_loopback(endpoint_url: str | None) -> bool:
    return bool(endpoint_url and endpoint_url.startswith(LOOPBACK_PREFIXES))


class Clients:
    """The lookoutvision and s3 clients of one command run."""

    def __init__(self, endpoint_url: str | None, region: str | None) -> None:
        import boto3

        from openlookout.client import use_api_gateway_signing

        session = boto3.session.Session()
        region = region or session.region_name or DEFAULT_REGION
        local = is_loopback(endpoint_url)
        # Keys are never checked locally, but botocore will not send a request without some.
        key = "local" if local and session.get_credentials() is None else None
        # boto3's type stubs have no lookoutvision (botocore dropped its model; see README).
        lookoutvision: Any = session.client(  # type: ignore[call-overload]
            "lookoutvision",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )
        if endpoint_url and ".execute-api." in endpoint_url:
            use_api_gateway_signing(lookoutvision)
        self.lookoutvision = lookoutvision
        # A deployed stack keeps its data in AWS's own S3; locally S3 is on the same endpoint.
        self.s3: Any = session.client(
            "s3",
            endpoint_url=endpoint_url if local else None,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )

    @classmethod
    def of(cls, args: argparse.Namespace) -> Clients:
        return cls(args.endpoint_url, args.region)
