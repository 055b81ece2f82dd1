"""LocalTriggers: the dispatcher woken by moto's DynamoDB streams, in process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from streamlet import Producer
from streamlet.admin import Admin
from streamlet.engine import Engine, schema
from streamlet.records import TopicPartition
from streamlet.triggers import Trigger, claims
from streamlet.triggers.local import LocalTriggers

from .helpers import Recorder, produce

TP = TopicPartition("orders", 0)


@pytest.fixture
def orders(engine: Engine) -> Engine:
    engine.create_topic("orders", 2)
    return engine


@pytest.fixture
def runner(orders: Engine) -> Iterator[LocalTriggers]:
    triggers = LocalTriggers.in_process(orders, poll_interval_s=0.02, backoff_ms=(10, 50))
    yield triggers
    triggers.stop()


def trigger(**settings: Any) -> Trigger:
    return Trigger("billing", "orders", function="tests:handler",
                   **{"maximum_batching_window_ms": 0, **settings})


def send(engine: Engine, n: int, start: int = 0, partition: int = 0) -> None:
    with Producer(transport=engine, linger_ms=0) as producer:
        for i in range(start, start + n):
            producer.send("orders", f'{{"n": {i}}}'.encode(), partition=partition)


def test_the_backlog_at_start_then_each_new_record_in_order(orders: Engine,
                                                            runner: LocalTriggers) -> None:
    produce(orders, "orders", 0, [{"n": i} for i in range(3)])
    recorder = Recorder()
    runner.add(trigger(starting_position="TRIM_HORIZON", batch_size=2), handler=recorder)
    runner.start()
    runner.drain()
    send(orders, 4, start=3)
    runner.drain()
    assert [v["n"] for v in recorder.values] == list(range(7))
    assert recorder.offsets() == list(range(7))
    assert orders.groups.lease("billing", TP).committed == 7  # type: ignore[union-attr]


def test_latest_delivers_only_what_comes_after_the_start(orders: Engine,
                                                         runner: LocalTriggers) -> None:
    produce(orders, "orders", 0, [{"n": i} for i in range(3)])
    recorder = Recorder()
    runner.add(trigger(), handler=recorder)
    runner.start()
    runner.drain()
    send(orders, 2, start=3, partition=1)
    runner.drain()
    assert [v["n"] for v in recorder.values] == [3, 4] and recorder.offsets(1) == [0, 1]


def test_reset_offsets_re_drives_the_trigger(orders: Engine, runner: LocalTriggers) -> None:
    recorder = Recorder()
    runner.add(trigger(), handler=recorder)
    runner.start()
    send(orders, 3)
    runner.drain()
    Admin(transport=orders).reset_offsets("billing", topic="orders", partition=0,
                                          to_offset=1, execute=True)
    runner.drain()
    assert recorder.offsets() == [0, 1, 2, 1, 2]


def test_a_new_runner_takes_over_what_a_crashed_one_left(orders: Engine,
                                                         runner: LocalTriggers) -> None:
    send(orders, 2)
    dead = LocalTriggers.in_process(orders)
    dead.add(trigger(starting_position="TRIM_HORIZON"), handler=Recorder())
    dead.dispatcher.activate("billing")
    # the dead runner's claim: taken, then the process died before delivering
    now = int(time.time() * 1000)
    lease = claims.acquire(orders.groups, "billing", TP, "crashed", now + 3_600_000, now)
    assert lease is not None
    recorder = Recorder()
    runner.add(trigger(starting_position="TRIM_HORIZON"), handler=recorder)
    runner.start()
    runner.drain()
    assert recorder.offsets() == [0, 1]


def test_one_session_per_partition_at_a_time(orders: Engine, runner: LocalTriggers) -> None:
    active: dict[int, int] = {0: 0, 1: 0}
    most = {0: 0, 1: 0}
    lock = threading.Lock()
    seen: list[tuple[int, int]] = []

    def slow(event: dict[str, Any], context: Any) -> None:
        partition = next(iter(event["records"].values()))[0]["partition"]
        with lock:
            active[partition] += 1
            most[partition] = max(most[partition], active[partition])
        time.sleep(0.03)
        with lock:
            active[partition] -= 1
            seen.extend((r["partition"], r["offset"]) for rs in event["records"].values()
                        for r in rs)

    runner.add(trigger(batch_size=1), handler=slow)
    runner.start()
    for i in range(6):
        send(orders, 1, start=i, partition=i % 2)
    runner.drain()
    assert most == {0: 1, 1: 1}
    for partition in (0, 1):
        assert [o for p, o in seen if p == partition] == [0, 1, 2]


def test_removed_items_wake_nothing(orders: Engine, runner: LocalTriggers) -> None:
    recorder = Recorder()
    runner.add(trigger(), handler=recorder)
    runner.start()
    send(orders, 1)
    runner.drain()
    sessions = len(runner.results)
    meta = orders.topics.get("orders")
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=orders.names.log_table, Key=meta.ref(0).batch_key(0))
    runner.drain()
    assert len(runner.results) == sessions
    assert schema.batch_sk(0).startswith(schema.BATCH_PREFIX)


def test_a_long_window_is_a_wake_up_and_makes_one_batch(orders: Engine,
                                                        runner: LocalTriggers) -> None:
    recorder = Recorder()
    runner.add(trigger(maximum_batching_window_ms=1_500, batch_size=100), handler=recorder)
    runner.start()
    started = time.monotonic()
    for i in range(3):
        send(orders, 1, start=i)
    runner.drain(timeout=10)
    assert recorder.calls == [[(0, 0), (0, 1), (0, 2)]]
    assert time.monotonic() - started >= 1.4
