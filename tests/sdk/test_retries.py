"""The SDK retries retriable failures and surfaces the rest on each future."""

from __future__ import annotations

import pytest

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
