"""Measures the candidate backends of `openlookout serve` (numbers in docs/local-runtime.md).

    .venv/bin/python bench/local_runtime.py [--rounds 200]

DynamoDB: DynamoDB Local (java) vs moto (in-process server). S3: s3rver (node) vs moto.
Step Functions: moto's ASL interpreter (parse + run) vs openlookout.local.asl.
Each backend runs alone; times are wall clock, medians where repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openlookout.local.backends import Backends, MotoBackends, NativeBackends, backend_client

TABLE = {
    "TableName": "Bench",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


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
        ddb = backend_client("dynamodb", backends.dynamodb_url, "us-east-1")
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

        s3 = backend_client("s3", backends.s3_url, "us-east-1", backends.s3_access_key)
        s3.create_bucket(Bucket="bench")
        small = os.urandom(64 * 1024)
        result["put_64k_ms"] = round(
            timed(lambda: s3.put_object(Bucket="bench", Key="small", Body=small), rounds // 4), 1
        )
        result["get_64k_ms"] = round(
            timed(lambda: s3.get_object(Bucket="bench", Key="small")["Body"].read(), rounds // 4), 1
        )
        with tempfile.NamedTemporaryFile() as big:
            big.write(os.urandom(50 * 1024 * 1024))
            big.flush()
            started = time.perf_counter()
            s3.upload_file(big.name, "bench", "big")
            result["upload_50mb_multipart_s"] = round(time.perf_counter() - started, 2)
    finally:
        started = time.perf_counter()
        backends.stop()
        result["stop_s"] = round(time.perf_counter() - started, 2)
    return result


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
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        results["native (DynamoDB Local + s3rver)"] = bench_backend(
            NativeBackends(Path(tmp) / "n"), args.rounds
        )
        results["moto server (in-process)"] = bench_backend(MotoBackends(Path(tmp) / "m"), args.rounds)
    results["asl: openlookout.local.asl"] = bench_ours(args.rounds)
    results["asl: moto 5.2.5 parser"] = bench_moto_sfn(args.rounds)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
