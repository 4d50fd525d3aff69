"""The local runtime itself: one endpoint for lookoutvision, s3 and stepfunctions, persistence
across restarts, clean shutdown. Runs against `openlookout serve` only."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract.conftest import LocalServer, client_for, free_port, process_alive
from tests.contract.signing import send

pytestmark = pytest.mark.contract

ECHO_MACHINE = "RuntimeEchoStateMachine"


def _machine_arn(stepfunctions: Any) -> str:
    machines = stepfunctions.list_state_machines()["stateMachines"]
    return next(m["stateMachineArn"] for m in machines if m["name"] == ECHO_MACHINE)


def _wait_execution(stepfunctions: Any, arn: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        description: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING" or time.monotonic() > deadline:
            return description
        time.sleep(0.05)


def test_s3_on_the_same_endpoint(
    local_service: LocalServer, s3: Any, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bucket = unique_name("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="images/a.png", Body=b"\x89PNG...", ContentType="image/png")
    got = s3.get_object(Bucket=bucket, Key="images/a.png")
    assert got["Body"].read() == b"\x89PNG..."
    assert got["ContentType"] == "image/png"

    for index in range(5):
        s3.put_object(Bucket=bucket, Key=f"many/{index}", Body=str(index).encode())
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 2}
        )
    )
    assert len(pages) == 3
    assert [o["Key"] for p in pages for o in p["Contents"]] == [f"many/{i}" for i in range(5)]

    # upload_file switches to a multipart upload above 8 MB.
    big = tmp_path / "big.bin"
    payload = os.urandom(10 * 1024 * 1024 + 123)
    big.write_bytes(payload)
    s3.upload_file(str(big), bucket, "big.bin")
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(payload)
    copy = tmp_path / "copy.bin"
    s3.download_file(bucket, "big.bin", str(copy))
    assert copy.read_bytes() == payload

    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "many/3"})
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"3"

    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"many/{i}"} for i in range(5)]})
    s3.delete_object(Bucket=bucket, Key="big.bin")
    s3.delete_object(Bucket=bucket, Key="images/a.png")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)


def test_unknown_route_is_an_aws_style_error(local_service: LocalServer) -> None:
    answer = send(local_service.endpoint_url, "GET", "/2020-11-20/nothing-here", service="lookoutvision")
    assert answer.status == 404
    assert answer.headers["x-amzn-errortype"]
    body = json.loads(answer.body)
    assert body["__type"] and body["message"]
    answer = send(local_service.endpoint_url, "PUT", "/2020-11-20/projects", service="lookoutvision")
    assert answer.status == 405


def test_api_answers_under_the_stage_prefix_too(local_service: LocalServer) -> None:
    # boto3 users of a deployed stack put /<StageName> in endpoint_url; the same URL works locally.
    answer = send(local_service.endpoint_url, "GET", "/v1/2020-11-20/projects", service="lookoutvision")
    assert "Projects" in json.loads(answer.body)


def test_debug_backends_reach_dynamodb_local_through_the_endpoint(local_service: LocalServer) -> None:
    """The session's server runs with --debug-backends: the endpoint's dynamodb route swaps the
    caller's key for the handlers' and the Host for DynamoDB Local's, which answers nothing else."""
    tables = client_for(local_service, "dynamodb").list_tables()["TableNames"]
    assert "ProjectsTable" in tables


def test_state_machine_runs_lambda_tasks_in_process(stepfunctions: Any, local_service: LocalServer) -> None:
    arn = _machine_arn(stepfunctions)
    started = stepfunctions.start_execution(
        stateMachineArn=arn, input=json.dumps({"who": "world", "items": [1, 2, 3], "fail": False})
    )
    description = _wait_execution(stepfunctions, started["executionArn"])
    assert description["status"] == "SUCCEEDED", description
    assert json.loads(description["output"]) == {"greeting": "hello world", "doubled": [2, 4, 6], "count": 6}
    listed = stepfunctions.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")["executions"]
    assert started["executionArn"] in [e["executionArn"] for e in listed]
    history = stepfunctions.get_execution_history(executionArn=started["executionArn"])["events"]
    assert history[0]["type"] == "ExecutionStarted"
    assert history[-1]["type"] == "ExecutionSucceeded"


def test_state_machine_failure_carries_the_lambda_error(
    stepfunctions: Any, local_service: LocalServer
) -> None:
    started = stepfunctions.start_execution(
        stateMachineArn=_machine_arn(stepfunctions),
        input=json.dumps({"who": "x", "items": [], "fail": "boom"}),
    )
    description = _wait_execution(stepfunctions, started["executionArn"])
    assert description["status"] == "FAILED"
    assert description["error"] == "EchoFailure"
    assert json.loads(description["cause"])["errorMessage"] == "asked to fail: boom"


def test_unknown_execution_is_a_modelled_error(stepfunctions: Any, local_service: LocalServer) -> None:
    with pytest.raises(ClientError) as caught:
        stepfunctions.describe_execution(
            executionArn="arn:aws:states:us-east-1:000000000000:execution:RuntimeEchoStateMachine:nope"
        )
    assert caught.value.response["Error"]["Code"] == "ExecutionDoesNotExist"


def test_data_survives_a_restart_and_sigterm_is_clean(
    local_service: LocalServer,
    lookoutvision: Any,
    s3: Any,
    stepfunctions: Any,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("restart")
    bucket = unique_name("restart")
    lookoutvision.create_project(ProjectName=project)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
    execution = stepfunctions.start_execution(
        stateMachineArn=_machine_arn(stepfunctions),
        input=json.dumps({"who": "r", "items": [1], "fail": False}),
    )["executionArn"]
    assert _wait_execution(stepfunctions, execution)["status"] == "SUCCEEDED"

    children = local_service.child_pids()
    assert children, "DynamoDB Local should be a child process"
    seconds = local_service.stop()
    assert seconds < 10, f"SIGTERM took {seconds:.1f} s"
    assert local_service.process is not None and local_service.process.returncode == 0
    deadline = time.monotonic() + 5
    while any(process_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if process_alive(pid)], "child processes outlived the server"

    local_service.start()
    names = [p["ProjectName"] for p in lookoutvision.list_projects()["Projects"]]
    assert project in names
    assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"
    assert stepfunctions.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
    lookoutvision.delete_project(ProjectName=project)


@pytest.mark.slow
def test_moto_fallback_keeps_data_across_a_restart(tmp_path: Path, unique_name: Callable[[str], str]) -> None:
    if os.environ.get("OPENLOOKOUT_ENDPOINT"):
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")
    server = LocalServer(tmp_path / "data", free_port(), ["--backend", "moto"])
    server.start()
    try:
        lookoutvision, s3 = client_for(server, "lookoutvision"), client_for(server, "s3")
        project, bucket = unique_name("moto"), unique_name("moto")
        lookoutvision.create_project(ProjectName=project)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"v", ContentType="image/png")
        assert server.stop() < 15
        server.start()
        assert project in [p["ProjectName"] for p in lookoutvision.list_projects()["Projects"]]
        got = s3.get_object(Bucket=bucket, Key="k")
        assert (got["Body"].read(), got["ContentType"]) == (b"v", "image/png")
    finally:
        server.stop()
