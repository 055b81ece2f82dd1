"""Fuzzing the handlers: whatever a client sends, the answer is never a 5xx, every error is
``{"error_code": int, "message": str}``, and a refused request writes nothing.

Malformed JSON, wrong types, huge and negative offsets and partitions, unknown
partitions, undecodable bodies, odd content types, oversized bodies and headers; JSON
that is not interoperable (NaN, Infinity, lone surrogates, booleans for numbers), topic
patterns RE2 refuses, group ids outside the rule, and callers outside the grant or
impersonating another principal's member or instance (issue 16).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from streamlet.engine import Engine
from streamlet.engine.grants import Grant
from streamlet.groups.leases import Member
from streamlet.records import TopicPartition
from tests.batches import make_batch
from tests.functions.conftest import HANDLERS, USER, LambdaContext, event, match, register

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

INTS = st.one_of(st.integers(-3, 5), st.integers(), st.integers(-2**80, 2**80),
                 st.sampled_from([2**31, 2**63 - 1, 2**63, -2**63 - 1, 10**40]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False),
                    st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
NAMES = st.one_of(st.sampled_from(["orders", "nope", "", ".", "a" * 300]), st.text(max_size=12))
SEGMENT = NAMES.map(lambda s: quote(s, safe="") or "x")
NUMBER_SEGMENT = st.one_of(INTS.map(str), st.text(max_size=6).map(lambda s: quote(s, safe="")
                                                                    or "0"))
DATA = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["JSON", "BINARY", "STRING", "AVRO", "xml"]), JSON),
    "data": JSON})
RECORD = st.fixed_dictionaries({}, optional={
    "partition_id": st.one_of(INTS, JSON), "key": st.one_of(DATA, JSON),
    "value": st.one_of(DATA, JSON), "timestamp": st.one_of(JSON, st.datetimes().map(str)),
    "headers": st.one_of(JSON, st.lists(st.fixed_dictionaries(
        {"name": st.one_of(st.text(max_size=5), JSON)},
        optional={"value": st.one_of(st.text(max_size=8), JSON)}), max_size=3))})
TOPIC_BODY = st.fixed_dictionaries({}, optional={
    "topic_name": st.one_of(NAMES, JSON), "partitions_count": st.one_of(INTS, JSON),
    "validate_only": st.one_of(st.booleans(), JSON),
    "configs": st.one_of(JSON, st.lists(st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["retention.ms", "nope"]), JSON),
         "value": st.one_of(INTS, st.text(max_size=6), JSON)}), max_size=3))})
TP = st.fixed_dictionaries({"topic": st.one_of(NAMES, JSON), "partition": st.one_of(INTS, JSON)},
                           optional={"offset": st.one_of(INTS, JSON),
                                     "timestamp": st.one_of(JSON, st.datetimes().map(str))})
V2_BODY = st.one_of(JSON, st.fixed_dictionaries({}, optional={
    "name": st.one_of(NAMES, JSON), "format": st.one_of(st.sampled_from(["binary", "json",
                                                                         "avro"]), JSON),
    "auto.offset.reset": st.one_of(st.sampled_from(["earliest", "latest", "none"]), JSON),
    "partitions": st.one_of(JSON, st.lists(TP, max_size=3)),
    "offsets": st.one_of(JSON, st.lists(TP, max_size=3)),
    "timestamps": st.one_of(JSON, st.lists(TP, max_size=3)),
    "topics": st.one_of(JSON, st.lists(st.one_of(NAMES, JSON), max_size=3)),
    "topic_pattern": st.one_of(st.sampled_from(["ord.*", "(", "[a-", ".*", "", "(a+)+b",
                                                "(a)\\1", "(?<=a)b", "a{1001}", "\\C"]),
                               JSON),
    "session.timeout.ms": st.one_of(INTS, JSON)}))
LEASE_JSON = st.fixed_dictionaries({}, optional={
    "owner": st.one_of(NAMES, JSON), "epoch": st.one_of(INTS, JSON),
    "committed": st.one_of(INTS, JSON), "metadata": st.one_of(st.text(max_size=5), JSON)})
GROUP_BODY = st.one_of(JSON, st.fixed_dictionaries({}, optional={
    "member_id": st.one_of(st.just("m"), NAMES, JSON), "epoch": st.one_of(INTS, JSON),
    "seen": st.one_of(LEASE_JSON, JSON, st.lists(TP, max_size=2)),
    "seen_beat": st.one_of(INTS, JSON), "beat": st.one_of(INTS, JSON),
    "client_id": st.one_of(NAMES, JSON), "host": st.one_of(NAMES, JSON),
    "session_ms": st.one_of(INTS, JSON),
    "topics": st.one_of(JSON, st.lists(st.one_of(NAMES, JSON), max_size=3)),
    "partitions": st.one_of(JSON, st.lists(TP, max_size=3)),
    "offsets": st.one_of(JSON, st.lists(TP, max_size=3))}))
TIERED_BODY = st.one_of(JSON, st.fixed_dictionaries({}, optional={
    "topic": st.one_of(NAMES, JSON), "force": st.one_of(st.booleans(), JSON),
    "before_offset": st.one_of(INTS, JSON)}))
BODY = st.one_of(st.none(), JSON.map(json.dumps), st.text(max_size=40),
                 st.binary(max_size=40))
QUERY = st.dictionaries(st.sampled_from(["offset", "max_bytes", "max_records", "wait_ms",
                                         "timestamp", "expected_offset", "timeout"]),
                        st.one_of(INTS.map(str), st.text(max_size=6)), max_size=4)
HEADERS = st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/json", "text/plain", "application/xml",
                                     "application/vnd.kafka.v2+json",
                                     "application/octet-stream", "multipart/form-data"]),
    "x-padding": st.sampled_from(["p", "p" * 20_000])}))


def state(engine: Engine) -> list[str]:
    """Every item of every table: what a refused request must leave as it was.

    Read from moto's in-memory backend: a Scan per table per example would dominate the
    run time.
    """
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    names = (engine.names.topics_table, engine.names.log_table, engine.names.groups_table)
    return sorted(json.dumps(item.to_json(), sort_keys=True, default=str)
                  for name in names for item in backend.get_table(name).all_items())


def check(engine: Engine, raw_event: dict[str, Any]) -> int:
    """Invoke; assert the error contract; return the status."""
    before = state(engine)
    name = match(raw_event["requestContext"]["http"]["method"], raw_event["rawPath"])[2]
    result = HANDLERS[name](raw_event, LambdaContext(remaining_ms=1_000))  # no long-polls
    status = result["statusCode"]
    assert status < 500, result
    if status >= 400:
        body = json.loads(result["body"])
        assert isinstance(body["error_code"], int) and not isinstance(body["error_code"], bool)
        assert isinstance(body["message"], str) and body["message"]
        assert state(engine) == before, (raw_event, result)
    return int(status)


def run(engine: Engine, method: str, path: str, body: Any, **kw: Any) -> int:
    return check(engine, event(method, path, body, **kw))


BILLING = "arn:aws:sts::123456789012:assumed-role/billing/s"
NOBODY = "arn:aws:iam::123456789012:user/unregistered"
CALLERS = st.sampled_from([None, BILLING, NOBODY])  # None: the admin the events carry


def prepared(aws: Engine) -> Engine:
    """Topic ``orders`` (2 partitions, 2 records), consumer instance ``c`` of ``g`` (the
    admin's) and member ``m`` of ``g`` holding orders/0; ``billing`` may read billing*."""
    if "orders" not in aws.list_topics():
        aws.create_topic("orders", 2)
        aws.create_topic("billing", 1)
        aws.append("orders", 0, make_batch([b"a", b"b"]))
        aws.instances.bound(_principal(USER)).create("g", "c", "binary", "earliest")
        mine = aws.groups.bound(_principal(USER), aws.topics)
        mine.heartbeat("g", Member("m", 0, topics=("orders",)))
        mine.ensure_leases("g", [TopicPartition("orders", 0)])
        mine.take("g", TopicPartition("orders", 0), "m", mine.lease("g", TopicPartition(
            "orders", 0)))
        register("arn:aws:iam::123456789012:role/billing", Grant.consume("billing", "g"))
    return aws


def _principal(arn: str) -> str:
    from streamlet.engine.grants import principal_key

    return principal_key(arn)


V3_QUERY = st.dictionaries(
    st.sampled_from(["offset_type", "include_authorized_operations"]),
    st.one_of(st.sampled_from(["earliest", "latest", "earliest_and_latest", "", "LATEST"]),
              st.text(max_size=6)), max_size=2)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]), cluster=st.one_of(
    st.just("streamlet"), SEGMENT), topic=st.one_of(st.sampled_from(["orders", "-"]), SEGMENT),
    body=st.one_of(TOPIC_BODY, JSON), query=V3_QUERY,
    suffix=st.sampled_from(["", "/partitions", "/configs", "/partitions/0",
                            "/partitions/P/offset", "/partitions/P/replicas",
                            "/partitions/-/reassignment"]),
    partition=st.one_of(st.sampled_from(["0", "1", "2", "-1"]), NUMBER_SEGMENT))
def test_admin(aws: Engine, method: str, cluster: str, topic: str, body: Any,
               query: dict[str, str], suffix: str, partition: str) -> None:
    engine = prepared(aws)
    if method == "DELETE" and topic == "orders":
        topic = "nope"
    suffix = suffix.replace("/P/", f"/{partition}/")
    path = f"/v3/clusters/{cluster}/topics" + ("" if method == "POST" else f"/{topic}{suffix}")
    run(engine, method, path, body if method in ("POST", "PATCH") else None, query=query)


@FUZZ
@given(method=st.sampled_from(["GET", "GET", "GET", "POST", "DELETE"]),
       cluster=st.one_of(st.just("streamlet"), SEGMENT),
       group=st.one_of(st.just("g"), SEGMENT), consumer=st.one_of(st.just("m"), SEGMENT),
       topic=st.one_of(st.just("orders"), SEGMENT),
       partition=st.one_of(st.sampled_from(["0", "1", "9", "-1"]), NUMBER_SEGMENT),
       suffix=st.sampled_from(["", "/consumers", "/consumers/C", "/consumers/C/assignments",
                               "/consumers/C/assignments/T/partitions/P", "/lags",
                               "/lags/T/partitions/P", "/lag-summary"]),
       body=st.one_of(st.none(), JSON), caller=CALLERS)
def test_v3_groups(aws: Engine, method: str, cluster: str, group: str, consumer: str,
                   topic: str, partition: str, suffix: str, body: Any,
                   caller: str | None) -> None:
    suffix = suffix.replace("/C", f"/{consumer}").replace("/T/", f"/{topic}/")
    path = f"/v3/clusters/{cluster}/consumer-groups/{group}" + suffix.replace(
        "/P", f"/{partition}")
    run(prepared(aws), method, path, body if method == "POST" else None, caller=caller)


@FUZZ
@given(method=st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE"]),
       cluster=st.one_of(st.just("streamlet"), SEGMENT),
       suffix=st.sampled_from(["", "/brokers", "/broker-configs", "/acls", "/consumer-groups",
                               "/topics/-/partitions/-/reassignment", "/brokers/1"]),
       body=st.one_of(st.none(), JSON), query=V3_QUERY)
def test_v3_cluster(aws: Engine, method: str, cluster: str, suffix: str, body: Any,
                    query: dict[str, str]) -> None:
    path = f"/v3/clusters/{cluster}{suffix}"
    run(prepared(aws), method, path, body if method in ("POST", "PUT") else None, query=query)


@FUZZ
@given(topic=st.one_of(st.just("orders"), SEGMENT), batch=st.booleans(),
       body=st.one_of(RECORD, JSON, st.lists(RECORD, max_size=3).map(
           lambda rs: {"entries": [{**r, "id": str(i)} for i, r in enumerate(rs)]})))
def test_v3_produce(aws: Engine, topic: str, batch: bool, body: Any) -> None:
    suffix = ":batch" if batch else ""
    run(prepared(aws), "POST", f"/v3/clusters/streamlet/topics/{topic}/records{suffix}", body)


@FUZZ
@given(method=st.sampled_from(["GET", "POST"]), topic=st.one_of(st.just("orders"), SEGMENT),
       partition=st.one_of(st.sampled_from(["0", "1", "2", "-1"]), NUMBER_SEGMENT),
       what=st.sampled_from(["batches", "offsets"]), query=QUERY,
       body=st.one_of(st.binary(max_size=80), st.builds(lambda n: make_batch([b"v"] * n)[:-1],
                                                          st.integers(1, 3))))
def test_native(aws: Engine, method: str, topic: str, partition: str, what: str,
                query: dict[str, str], body: bytes) -> None:
    path = f"/v1/topics/{topic}/partitions/{partition}/{what}"
    run(prepared(aws), method, path, body if method == "POST" else None, query=query)


@FUZZ
@given(group=st.one_of(st.just("g"), SEGMENT), name=st.one_of(st.just("c"), SEGMENT),
       route=st.sampled_from([("POST", ""), ("POST", "/assignments"), ("GET", "/assignments"),
                              ("POST", "/positions"), ("POST", "/positions/beginning"),
                              ("POST", "/positions/end"), ("GET", "/records"),
                              ("POST", "/subscription"), ("GET", "/subscription"),
                              ("DELETE", "/subscription"), ("POST", "/offsets"),
                              ("GET", "/offsets"), ("DELETE", ""), ("CREATE", "")]),
       body=V2_BODY, query=QUERY, caller=CALLERS)
def test_v2_consumers(aws: Engine, group: str, name: str, route: tuple[str, str], body: Any,
                      query: dict[str, str], caller: str | None) -> None:
    method, suffix = route
    engine = prepared(aws)
    if method == "CREATE":
        run(engine, "POST", f"/consumers/{group}", body, caller=caller)
        return
    if method == "DELETE" and (group, name) == ("g", "c") and caller is None:
        name = "other"
    path = f"/consumers/{group}/instances/{name}{suffix}"
    status = run(engine, method, path, body if method in ("POST", "GET") else None,
                 query=query, caller=caller)
    if caller is not None and (group, name) == ("g", "c"):
        assert status in (400, 403, 404, 415), status  # another principal's instance


@FUZZ
@given(group=st.one_of(st.just("g"), SEGMENT), topic=st.one_of(st.just("orders"), SEGMENT),
       partition=st.one_of(st.sampled_from(["0", "1", "9"]), NUMBER_SEGMENT),
       route=st.sampled_from([("GET", ""), ("GET", "/leases/T/P"), ("POST", "/leases"),
                              ("POST", "/leases/T/P/take"), ("POST", "/leases/T/P/release"),
                              ("POST", "/members/heartbeat"), ("POST", "/members/remove"),
                              ("POST", "/commits"), ("PUT", "/offsets"), ("DELETE", ""),
                              ("LIST", "")]),
       body=GROUP_BODY, caller=CALLERS)
def test_native_groups(aws: Engine, group: str, topic: str, partition: str,
                       route: tuple[str, str], body: Any, caller: str | None) -> None:
    method, suffix = route
    engine = prepared(aws)
    if method == "LIST":
        run(engine, "GET", "/v1/groups", None, caller=caller)
        return
    if method == "DELETE" and caller is None:
        group = "other"  # keep the prepared group for the next example
    path = f"/v1/groups/{group}" + suffix.replace("T/P", f"{topic}/{partition}")
    run(engine, method, path, body if method in ("POST", "PUT") else None, caller=caller)


@FUZZ
@given(route=st.sampled_from(["/v1/archive", "/v1/retention", "delete-records"]),
       topic=st.one_of(st.just("orders"), SEGMENT),
       partition=st.one_of(st.sampled_from(["0", "1", "2"]), NUMBER_SEGMENT), body=TIERED_BODY)
def test_tiered_storage(aws: Engine, route: str, topic: str, partition: str,
                        body: Any) -> None:
    if route == "delete-records":
        route = f"/v1/topics/{topic}/partitions/{partition}/delete-records"
    run(prepared(aws), "POST", route, body)


ROUTE_PATHS = ["/v3/clusters/streamlet/topics", "/v3/clusters/streamlet/topics/orders/records",
               "/v3/clusters/streamlet/topics/orders/records:batch", "/v1/producer-ids",
               "/v1/topics/orders/partitions/0/batches", "/consumers/g",
               "/consumers/g/instances/c/positions", "/consumers/g/instances/c/subscription",
               "/consumers/g/instances/c/offsets", "/v1/groups/g/commits",
               "/v1/groups/g/members/heartbeat", "/v1/archive",
               "/v1/topics/orders/partitions/0/delete-records"]


@FUZZ
@given(path=st.sampled_from(ROUTE_PATHS), body=BODY, headers=HEADERS,
       mangle=st.sampled_from(["none", "bad-base64", "non-utf8", "huge"]))
def test_raw_envelopes(aws: Engine, path: str, body: Any, headers: dict[str, str],
                       mangle: str) -> None:
    raw = event("POST", path, body if body is not None else None, headers=headers)
    MANGLERS[mangle](raw)
    check(prepared(aws), raw)


RAW_JSON = st.sampled_from([
    '{"partition_id": NaN}', '{"offsets": [{"topic": "orders", "partition": 0, "offset": '
    'Infinity}]}', '{"topics": ["\\ud800"]}', '{"\\udfff": 1}', '{"member_id": "\\udc00"}',
    '{"partitions": [{"topic": "orders", "partition": true}]}', '{"partition": 1e999}',
    '{"topic_pattern": "(a+)+b"}', '{"member_id": "m", "topics": ["orders"], "heartbeat_ms":'
    ' -Infinity}', '[' * 5000, '{"a": ' * 3000])


@FUZZ
@given(path=st.sampled_from(ROUTE_PATHS), text=RAW_JSON, typed=st.booleans(),
       caller=CALLERS)
def test_json_that_is_not_json(aws: Engine, path: str, text: str, typed: bool,
                               caller: str | None) -> None:
    """NaN, Infinity, lone surrogates, booleans for numbers, deep nesting, a missing
    Content-Type: a 4xx naming the problem, never a 5xx, nothing written."""
    raw = event("POST", path, text, caller=caller)
    if not typed:
        del raw["headers"]["content-type"]
    check(prepared(aws), raw)


def _bad_base64(raw: dict[str, Any]) -> None:
    raw.update(body="%%not base64%%", isBase64Encoded=True)


def _non_utf8(raw: dict[str, Any]) -> None:
    raw.update(body=base64.b64encode(b"\xff\xfe{\x00}").decode(), isBase64Encoded=True)


def _huge(raw: dict[str, Any]) -> None:
    raw.update(body="x" * (6 * 1024 * 1024 + 1), isBase64Encoded=False)


MANGLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "none": lambda raw: None, "bad-base64": _bad_base64, "non-utf8": _non_utf8, "huge": _huge}
