"""Measures the candidate backends of `openlookout serve` (numbers in docs/local-runtime.md).

    .venv/bin/python bench/local_runtime.py [--rounds 200] [--compare-s3 OTHER_CHECKOUT]

DynamoDB: DynamoDB Local (java) vs moto (in-process server). Step Functions: moto's ASL
interpreter (parse + run) vs openlookout.local.asl. S3: the whole endpoint (`openlookout serve`
started from this checkout) through boto3; with --compare-s3, the same from another checkout of
this repository (e.g. one whose S3 was s3rver behind a proxy), run alternately twice so both
see the same load. Times are wall clock, medians where repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openlookout.local.backends import Backends, MotoBackends, NativeBackends  # noqa: E402

KEY = "bench" + uuid.uuid4().hex  # the backends answer only the key they were started with

TABLE = {
    "TableName": "Bench",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(call: Callable[[], Any], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def bench_backend(backends: Backends, rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    started = time.perf_counter()
    backends.start()
    result["ready_s"] = round(time.perf_counter() - started, 2)
    try:
        ddb = backends.client("us-east-1")
        started = time.perf_counter()
        ddb.create_table(**TABLE)
        result["create_table_ms"] = round((time.perf_counter() - started) * 1000)
        counter = iter(range(10**9))
        result["put_item_ms"] = round(
            timed(
                lambda: ddb.put_item(
                    TableName="Bench", Item={"pk": {"S": "p"}, "sk": {"S": str(next(counter))}}
                ),
                rounds,
            ),
            1,
        )
        result["get_item_ms"] = round(
            timed(lambda: ddb.get_item(TableName="Bench", Key={"pk": {"S": "p"}, "sk": {"S": "1"}}), rounds),
            1,
        )
        result["query_100_ms"] = round(
            timed(
                lambda: ddb.query(
                    TableName="Bench",
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "p"}},
                    Limit=100,
                ),
                max(10, rounds // 10),
            ),
            1,
        )
        # Real DynamoDB refuses a FilterExpression on a key attribute; does the emulator?
        try:
            ddb.query(
                TableName="Bench",
                KeyConditionExpression="pk = :p",
                FilterExpression="contains(sk, :s)",
                ExpressionAttributeValues={":p": {"S": "p"}, ":s": {"S": "1"}},
            )
            result["filter_on_key_attribute"] = "accepted (AWS refuses it)"
        except Exception as error:
            result["filter_on_key_attribute"] = f"refused like AWS: {type(error).__name__}"

    finally:
        started = time.perf_counter()
        backends.stop()
        result["stop_s"] = round(time.perf_counter() - started, 2)
    return result


def _serve(checkout: Path, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """`openlookout serve` from `checkout` (its own code and template), on a free port."""
    port = free_port()
    log = data_dir.parent / "serve.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "openlookout.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "PYTHONPATH": str(checkout), "OPENLOOKOUT_NODE_MODULES": str(ROOT / "node_modules")}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT)
    while b"listening on" not in log.read_bytes():
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}", time.perf_counter() - started


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Linux /proc), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry.name == str(pid) or stat[1] == str(pid):
            total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    return round(total / 1e6)


def bench_s3_endpoint(checkout: Path, rounds: int) -> dict[str, Any]:
    """PutObject/GetObject 64 KiB, upload_file/download_file 50 MB (multipart), listing 2000 keys."""
    with tempfile.TemporaryDirectory() as tmp:
        process, endpoint, ready = _serve(checkout, Path(tmp) / "data")
        try:
            s3 = boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="bench", aws_secret_access_key="bench",
            )  # fmt: skip
            s3.create_bucket(Bucket="bench")
            small, big = os.urandom(64 * 1024), Path(tmp) / "big"
            big.write_bytes(os.urandom(50 * 1024 * 1024))
            result: dict[str, Any] = {"ready_s": round(ready, 2)}
            put = timed(lambda: s3.put_object(Bucket="bench", Key="small", Body=small), rounds // 4)
            get = timed(lambda: s3.get_object(Bucket="bench", Key="small")["Body"].read(), rounds // 4)
            result.update(put_64k_ms=round(put, 1), get_64k_ms=round(get, 1))
            result["upload_50mb_s"] = round(
                timed(lambda: s3.upload_file(str(big), "bench", "big"), 1) / 1000, 2
            )
            fetched = Path(tmp) / "fetched"
            result["download_50mb_s"] = round(
                timed(lambda: s3.download_file("bench", "big", str(fetched)), 1) / 1000, 2
            )
            for index in range(2000):
                s3.put_object(Bucket="bench", Key=f"list/{index:05d}", Body=b"x")
            paginator = s3.get_paginator("list_objects_v2")
            listed = timed(
                lambda: [p["KeyCount"] for p in paginator.paginate(Bucket="bench", Prefix="list/")], 3
            )
            result["list_2000_keys_ms"] = round(listed)
            result["rss_mb"] = _rss_mb(process.pid)
            return result
        finally:
            process.terminate()
            process.wait(30)


MAP_DEFINITION = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Parameters": {"items.$": "States.ArrayRange(1, 100, 1)"}, "Next": "Each"},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "StartAt": "Check",
                "States": {
                    "Check": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$", "NumericGreaterThan": 50, "Next": "Big"}],
                        "Default": "Small",
                    },
                    "Big": {"Type": "Pass", "Result": "big", "End": True},
                    "Small": {"Type": "Pass", "Result": "small", "End": True},
                },
            },
            "End": True,
        },
    },
}


def bench_ours(rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    from openlookout.local.asl import Interpreter

    imported = time.perf_counter() - started
    interpreter = Interpreter(lambda name, payload: payload)
    output = interpreter.run(MAP_DEFINITION, {}, {})
    assert output.count("big") == 50
    run_ms = timed(lambda: interpreter.run(MAP_DEFINITION, {}, {}), max(5, rounds // 20))
    return {"import_s": round(imported, 2), "map_100_items_ms": round(run_ms, 1)}


def bench_moto_sfn(rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    imported = time.perf_counter() - started
    text = json.dumps(MAP_DEFINITION)
    parse_ms = timed(lambda: AmazonStateLanguageParser.parse(text), 5)
    import boto3

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(
            name="bench", definition=text, roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]

        def one_execution() -> None:
            execution = client.start_execution(stateMachineArn=arn, name=uuid.uuid4().hex)["executionArn"]
            while client.describe_execution(executionArn=execution)["status"] == "RUNNING":
                time.sleep(0.005)
            assert client.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"

        run_ms = timed(one_execution, max(5, rounds // 20))
    return {
        "import_s": round(imported, 2),
        "parse_ms": round(parse_ms, 1),
        "map_100_items_ms": round(run_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--compare-s3", type=Path, help="another checkout whose endpoint's S3 to measure too")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        results["DynamoDB Local"] = bench_backend(NativeBackends(Path(tmp) / "n", KEY), args.rounds)
        results["moto server (in-process)"] = bench_backend(MotoBackends(Path(tmp) / "m", KEY), args.rounds)
    checkouts = {"s3: this checkout": ROOT} | (
        {"s3: other checkout": args.compare_s3} if args.compare_s3 else {}
    )
    for run in (1, 2):
        for name, checkout in checkouts.items():
            results[f"{name}, run {run}"] = bench_s3_endpoint(checkout.resolve(), args.rounds)
    results["asl: openlookout.local.asl"] = bench_ours(args.rounds)
    results["asl: moto 5.2.5 parser"] = bench_moto_sfn(args.rounds)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
