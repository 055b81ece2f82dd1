"""The SDK retries retriable failures and surfaces the rest on each future."""

from __future__ import annotations

import time
from typing import Any

import pytest
import urllib3

from streamlet import Admin, Producer, Throttled, TopicNotFound
from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from tests.batches import make_batch
from tests.harness.faults import FaultPlan, install

QUICK = {"retries": {"mode": "standard", "max_attempts": 2}}  # botocore: 2 attempts


def faulty(platform: LocalPlatform, plan: FaultPlan) -> Engine:
    dynamodb = install(platform.client("dynamodb", **QUICK), plan)
    return Engine(dynamodb, install(platform.client("s3", **QUICK), plan), platform.names)


def values(platform: LocalPlatform, topic: str) -> list[bytes]:
    engine = platform.engine()
    return [r.value or b"" for b in engine.fetch(topic, 0, 0).batches
            for r in decode_batch(topic, 0, b)]


def test_throttling_beyond_botocore_retries_is_retried_by_the_producer(
        live_platform: LocalPlatform, topic: str) -> None:
    Admin(live_platform.endpoint).create_topic(topic)
    plan = FaultPlan.scripted(["throttle"] * 5, ops={"PutItem"})
    engine = faulty(live_platform, plan)
    with pytest.raises(Throttled):  # botocore gives up after 2 attempts: the engine says so
        engine.append(topic, 0, make_batch([b"refused"]))
    with Producer(transport=engine, retry_backoff_ms=1) as producer:
        future = producer.send(topic, b"persistent")
    assert future.result(timeout=30).offset == 0
    assert plan.counts()["throttle"] == 5  # 2 refused the direct call, 3 the producer rode out
    assert values(live_platform, topic) == [b"persistent"]


@pytest.mark.parametrize("fault", ["lost_ack", "ambiguous_500", "timeout_before"])
def test_ambiguous_appends_are_written_once(live_platform: LocalPlatform, topic: str,
                                            fault: str) -> None:
    Admin(live_platform.endpoint).create_topic(topic)
    plan = FaultPlan.scripted([fault] * 3, ops={"PutItem"})  # beyond botocore
    with Producer(transport=faulty(live_platform, plan), retry_backoff_ms=1) as producer:
        futures = [producer.send(topic, f"v{i}") for i in range(3)]
    assert [f.result(timeout=30).offset for f in futures] == [0, 1, 2]
    assert values(live_platform, topic) == [b"v0", b"v1", b"v2"]


def test_delivery_failures_surface_on_every_future(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic)
    producer = Producer(endpoint, linger_ms=60_000)  # hold the batch until flush
    futures = [producer.send(topic, b"x") for _ in range(3)]
    admin.delete_topic(topic)
    producer.flush(timeout=30)
    for future in futures:
        assert isinstance(future.exception(), TopicNotFound)
    producer.close()


def test_after_a_failed_batch_the_next_one_is_never_taken_for_a_retry(
        live_platform: LocalPlatform, topic: str) -> None:
    """The first attempt lands but its reply is lost; throttles then outlast the delivery
    timeout. The batch is reported failed (it may have landed); the next batch must be
    written as itself, not acknowledged as a duplicate of the one that landed."""
    Admin(live_platform.endpoint).create_topic(topic)
    # the topic lookup and the tail read, then the append lands with its reply lost, then
    # every read and write is throttled: no retry can discover that the batch landed
    plan = FaultPlan.scripted(["ok", "ok", "lost_ack"] + ["throttle"] * 500,
                              ops={"Query", "GetItem", "PutItem"})
    producer = Producer(transport=faulty(live_platform, plan), retry_backoff_ms=5,
                        delivery_timeout_ms=300, linger_ms=0)
    first = producer.send(topic, "v0")
    assert isinstance(first.exception(timeout=30), Throttled)
    plan.enabled = False
    assert producer.send(topic, "v1").result(timeout=30).offset == 1
    producer.close()
    assert values(live_platform, topic) == [b"v0", b"v1"]


@pytest.mark.parametrize("fault", ["lost_ack", "ambiguous_500"])
def test_an_ambiguous_conditional_append_is_answered_not_refused(
        live_platform: LocalPlatform, topic: str, fault: str) -> None:
    """An expected-offset append lands but its reply is lost (below botocore's retries):
    the resend finds its own batch at the key, so the answer is the offset, never an
    OffsetMismatch against itself, and nothing is written twice."""
    Admin(live_platform.endpoint).create_topic(topic)
    plan = FaultPlan.scripted(["ok", fault], ops={"PutItem"})  # the second append's put
    engine = faulty(live_platform, plan)
    engine.append(topic, 0, make_batch([b"first"]))
    result = engine.append(topic, 0, make_batch([b"second"], pid=3, seq=0), expected_offset=1)
    assert (result.base_offset, result.duplicate) == (1, True)
    assert plan.counts()[fault] == 1
    assert values(live_platform, topic) == [b"first", b"second"]


def test_a_put_re_applied_seconds_later_changes_nothing(live_platform: LocalPlatform,
                                                        topic: str) -> None:
    """A captured append request, sent again after other appends (a delayed duplicate on
    the network): its key is taken, so the condition fails and the log is unchanged."""
    Admin(live_platform.endpoint).create_topic(topic)
    engine = live_platform.engine()
    captured: list[Any] = []
    engine._ddb.meta.events.register(
        "before-send.dynamodb.PutItem", lambda request, **_: captured.append(request))
    engine.append(topic, 0, make_batch([b"once"]))
    for i in range(3):
        engine.append(topic, 0, make_batch([f"later-{i}".encode()]))
    time.sleep(1.5)
    request = captured[0]
    again = urllib3.request(request.method, request.url, body=request.body,
                            headers=dict(request.headers.items()), timeout=10)
    assert again.status == 400 and b"ConditionalCheckFailed" in again.data
    assert values(live_platform, topic) == [b"once", b"later-0", b"later-1", b"later-2"]
