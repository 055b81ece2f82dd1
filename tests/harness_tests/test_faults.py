"""Self-tests for tests.harness.faults against a real moto HTTP server."""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from tests.harness.faults import (
    Fault,
    FaultPlan,
    FaultRates,
    SimulatedCrash,
    install,
    session_of,
    uninstall,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on an ephemeral localhost port, with fake credentials."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _ENV.items():
            mp.setenv(key, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def config(total_attempts: int | None = None) -> Config:
    """Standard retries with ``max_attempts=3`` as in reliability.md 7.2.

    botocore counts ``max_attempts`` as retries (so up to 4 requests);
    ``total_attempts`` caps every request instead.
    """
    if total_attempts is not None:
        return Config(retries={"mode": "standard", "total_max_attempts": total_attempts})
    return Config(retries={"mode": "standard", "max_attempts": 3})


def dynamodb(url: str, total_attempts: int | None = None) -> DynamoDBClient:
    """A DynamoDB client on the moto server."""
    cfg = config(total_attempts)
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=url, config=cfg)


def s3(url: str, total_attempts: int | None = None) -> S3Client:
    """An S3 client on the moto server."""
    cfg = config(total_attempts)
    return boto3.client("s3", region_name=REGION, endpoint_url=url, config=cfg)


@pytest.fixture
def table(moto_endpoint: str) -> str:
    """A fresh DynamoDB table keyed by ``pk``."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    dynamodb(moto_endpoint).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh S3 bucket."""
    name = f"b-{uuid.uuid4().hex[:8]}"
    s3(moto_endpoint).create_bucket(Bucket=name)
    return name


def conditional_put(ddb: DynamoDBClient, table: str) -> None:
    """The reliability.md 7.2 experiment: one ``attribute_not_exists`` PutItem."""
    ddb.put_item(
        TableName=table,
        Item={"pk": {"S": "k"}, "v": {"S": "1"}},
        ConditionExpression="attribute_not_exists(pk)",
    )


def outcome(call: Callable[[], object]) -> str:
    """What the caller saw: "ok", a ClientError code, or "SimulatedCrash"."""
    try:
        call()
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    except SimulatedCrash:
        return "SimulatedCrash"
    return "ok"


CCF = "ConditionalCheckFailedException"


class Row(NamedTuple):
    """One row of the reliability.md 7.2 table."""

    fault: Fault
    seen: str  # what the caller saw
    stored: bool  # whether the write was applied
    attempts: int  # requests botocore made
    sent: int  # requests that really reached moto


PUT_ITEM_TABLE = [
    Row("ok", "ok", True, 1, 1),
    Row("timeout_before", "ok", True, 2, 1),
    Row("throttle", "ok", True, 2, 1),
    Row("lost_ack", CCF, True, 2, 2),
    Row("ambiguous_500", CCF, True, 2, 2),
    Row("crash_before", "SimulatedCrash", False, 1, 0),
    Row("crash_after", "SimulatedCrash", True, 1, 1),
]
PUT_OBJECT_TABLE = [
    Row("throttle", "ok", True, 2, 1),
    Row("timeout_before", "ok", True, 2, 1),
    Row("lost_ack", "PreconditionFailed", True, 2, 2),
    Row("ambiguous_500", "PreconditionFailed", True, 2, 2),
    Row("crash_before", "SimulatedCrash", False, 1, 0),
    Row("crash_after", "SimulatedCrash", True, 1, 1),
]


@pytest.mark.parametrize("row", PUT_ITEM_TABLE, ids=[r.fault for r in PUT_ITEM_TABLE])
def test_conditional_put_item_table(moto_endpoint: str, table: str, row: Row) -> None:
    """Reproduces the reliability.md 7.2 table, fault on the first attempt only."""
    plan = FaultPlan.scripted([row.fault], ops={"PutItem"})
    ddb = install(dynamodb(moto_endpoint), plan)
    assert outcome(lambda: conditional_put(ddb, table)) == row.seen
    key = {"pk": {"S": "k"}}
    item = dynamodb(moto_endpoint).get_item(TableName=table, Key=key, ConsistentRead=True)
    assert ("Item" in item) == row.stored
    assert (session_of(ddb).attempts, session_of(ddb).sent) == (row.attempts, row.sent)
    assert [d.fault for d in plan.log] == [row.fault] + ["ok"] * (row.attempts - 1)


@pytest.mark.parametrize("row", PUT_OBJECT_TABLE, ids=[r.fault for r in PUT_OBJECT_TABLE])
def test_s3_conditional_put_object(moto_endpoint: str, bucket: str, row: Row) -> None:
    """An ``If-None-Match: *`` PutObject behaves like the conditional PutItem."""
    plan = FaultPlan.scripted([row.fault], ops={"s3:PUT"})
    faulty = install(s3(moto_endpoint), plan)
    put = functools.partial(faulty.put_object, Bucket=bucket, Key="seg", Body=b"d", IfNoneMatch="*")
    assert outcome(put) == row.seen
    listed = s3(moto_endpoint).list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed.get("Contents", [])] == (["seg"] if row.stored else [])
    assert (session_of(faulty).attempts, session_of(faulty).sent) == (row.attempts, row.sent)


@pytest.mark.parametrize(("fault", "seen"), [("throttle", "ok"), ("ambiguous_500", CCF)])
def test_legacy_retry_mode_retries_synthetic_errors(
    moto_endpoint: str, table: str, fault: Fault, seen: str
) -> None:
    """botocore's default (legacy) retry mode also retries the synthetic responses."""
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
    install(ddb, FaultPlan.scripted([fault], ops={"PutItem"}))
    assert outcome(lambda: conditional_put(ddb, table)) == seen
    assert session_of(ddb).attempts == 2


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [("throttle", "ThrottlingException", 400), ("ambiguous_500", "InternalServerError", 500)],
)
def test_dynamodb_synthetic_errors_parse(
    moto_endpoint: str, table: str, fault: Fault, code: str, status: int
) -> None:
    """With retries off, botocore parses the synthetic response into the modeled error."""
    ddb = install(dynamodb(moto_endpoint, total_attempts=1), FaultPlan.scripted([fault]))
    with pytest.raises(ClientError) as info:
        ddb.get_item(TableName=table, Key={"pk": {"S": "k"}})
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [("throttle", "SlowDown", 503), ("ambiguous_500", "InternalError", 500)],
)
def test_s3_synthetic_errors_parse(
    moto_endpoint: str, bucket: str, fault: Fault, code: str, status: int
) -> None:
    """S3 gets XML-shaped errors: 503 SlowDown and 500 InternalError."""
    faulty = install(s3(moto_endpoint, total_attempts=1), FaultPlan.scripted([fault]))
    with pytest.raises(ClientError) as info:
        faulty.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_s3_lost_ack_unconditional_put_is_idempotent(moto_endpoint: str, bucket: str) -> None:
    """A plain PutObject survives a lost ack: the retry overwrites the same bytes."""
    faulty = install(s3(moto_endpoint), FaultPlan.scripted(["lost_ack"], ops={"s3:PUT"}))
    faulty.put_object(Bucket=bucket, Key="seg", Body=b"data")
    body = s3(moto_endpoint).get_object(Bucket=bucket, Key="seg")["Body"].read()
    assert body == b"data"
    assert (session_of(faulty).attempts, session_of(faulty).sent) == (2, 2)


def test_filter_and_retry_exhaustion(moto_endpoint: str, table: str) -> None:
    """Only filtered operations are faulted; a always-throttled op exhausts its retries."""
    plan = FaultPlan(seed=1, rates=FaultRates(throttle=1.0), ops={"PutItem"})
    ddb = install(dynamodb(moto_endpoint, total_attempts=2), plan)
    assert ddb.describe_table(TableName=table)["Table"]["TableName"] == table
    assert outcome(lambda: conditional_put(ddb, table)) == "ThrottlingException"
    assert plan.counts() == {"throttle": 2}
    assert [d.operation for d in plan.log] == ["DescribeTable", "PutItem", "PutItem"]
    assert session_of(ddb).sent == 1


def test_disabled_plan_injects_nothing(moto_endpoint: str, table: str) -> None:
    """``enabled = False`` heals everything; re-enabling resumes injection."""
    plan = FaultPlan(seed=2, rates=FaultRates(crash_before=1.0))
    ddb = install(dynamodb(moto_endpoint), plan)
    plan.enabled = False
    conditional_put(ddb, table)
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "k"}})["Item"]["v"] == {"S": "1"}
    assert plan.counts() == {}
    assert {d.fault for d in plan.log} == {"ok"}
    plan.enabled = True
    assert outcome(lambda: ddb.describe_table(TableName=table)) == "SimulatedCrash"


def test_same_seed_same_decisions() -> None:
    """A seed fully determines the decision sequence; another seed differs."""
    rates = FaultRates(throttle=0.2, timeout_before=0.1, lost_ack=0.1, crash_after=0.05)
    ops = ["PutItem", "Query", "TransactWriteItems", "s3:PUT"] * 100

    def run(seed: int) -> list[tuple[int, str, str]]:
        plan = FaultPlan(seed=seed, rates=rates, ops={"PutItem", "TransactWriteItems"})
        for op in ops:
            plan.decide(op)
        return [(d.index, d.operation, d.fault) for d in plan.log]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert {f for _, op, f in first if op in {"Query", "s3:PUT"}} == {"ok"}
    assert {f for _, _, f in first} >= {"ok", "throttle", "timeout_before", "lost_ack"}


def test_rates_validation_and_script_validation() -> None:
    """Rates outside [0, 1] or summing above 1, and unknown script faults, are refused."""
    with pytest.raises(ValueError):
        FaultRates(throttle=0.7, lost_ack=0.7)
    with pytest.raises(ValueError):
        FaultRates(throttle=-0.1)
    with pytest.raises(ValueError):
        FaultPlan.scripted(["explode"])  # type: ignore[list-item]


def test_plan_is_thread_safe() -> None:
    """Concurrent decisions get unique, dense request indices."""
    plan = FaultPlan(seed=3, rates=FaultRates(throttle=0.5))
    threads = [
        threading.Thread(target=lambda: [plan.decide("PutItem") for _ in range(500)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [d.index for d in plan.log] == list(range(4000))
    assert sum(plan.counts().values()) == sum(d.fault == "throttle" for d in plan.log)


def test_simulated_crash_is_not_an_exception() -> None:
    """SimulatedCrash escapes ``except Exception`` like a process death."""
    assert not issubclass(SimulatedCrash, Exception)
    assert issubclass(ReadTimeoutError, Exception)


def test_uninstall_restores_real_session(moto_endpoint: str, table: str) -> None:
    """After ``uninstall`` the plan is no longer consulted; reinstall does not nest."""
    plan = FaultPlan(rates=FaultRates(crash_before=1.0))
    ddb = install(install(dynamodb(moto_endpoint), plan), plan)
    assert session_of(ddb).inner.__class__.__name__ == "URLLib3Session"
    uninstall(ddb)
    assert ddb.describe_table(TableName=table)["Table"]["TableName"] == table
    assert plan.log == []
