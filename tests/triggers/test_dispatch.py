"""Dispatcher sessions on the engine (in-process moto): claims, starting positions, commits
as the consumer group's, reset-offsets, dead letters, budgets and the windows' wake-ups."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from streamlet.admin import Admin
from streamlet.clock import ManualClock
from streamlet.engine import Engine
from streamlet.records import TopicPartition
from streamlet.triggers import (
    Dispatcher,
    FunctionTarget,
    QueueDeadLetters,
    QueueDestination,
    TopicDeadLetters,
    TopicDestination,
    Trigger,
    claims,
)
from streamlet.triggers.dispatch import Result

from .helpers import Recorder, produce, read_all

TP = TopicPartition("orders", 0)


def make(engine: Engine, handler: Any, token: str = "tok", **settings: Any) -> Dispatcher:
    defaults = {"starting_position": "TRIM_HORIZON", "maximum_batching_window_ms": 0}
    trigger = Trigger("billing", "orders", function="m:f", **{**defaults, **settings})
    dead = {"billing": TopicDeadLetters(engine)} if isinstance(
        trigger.on_failure, TopicDestination) else {}
    return Dispatcher(engine, [trigger], {"billing": FunctionTarget(handler, "streamlet://t")},
                      dead, token=token, backoff_ms=(0, 0))


@pytest.fixture
def orders(engine: Engine) -> Engine:
    engine.create_topic("orders", 2)
    return engine


def committed(engine: Engine, group: str = "billing", tp: TopicPartition = TP) -> int | None:
    lease = engine.groups.lease(group, tp)
    return None if lease is None else lease.committed


def test_a_session_delivers_in_order_commits_and_leaves_the_claim_idle(orders: Engine) -> None:
    produce(orders, "orders", 0, range(7), per_batch=3)
    recorder = Recorder()
    result = make(orders, recorder, batch_size=2).dispatch("billing", 0)
    assert recorder.offsets() == list(range(7))
    assert (result.delivered, result.invocations, result.position) == (7, 4, 7)
    lease = orders.groups.lease("billing", TP)
    assert lease is not None and lease.committed == 7 and lease.owner == claims.IDLE
    # the group shows the trigger's lag like any consumer group's
    (row,) = [r for r in Admin(transport=orders).describe_group("billing") if r.partition == 0]
    assert (row.current_offset, row.log_end_offset, row.lag) == (7, 7, 0)


def test_nothing_is_delivered_twice_by_later_sessions(orders: Engine) -> None:
    produce(orders, "orders", 0, range(3))
    recorder = Recorder()
    dispatcher = make(orders, recorder)
    dispatcher.dispatch("billing", 0)
    assert dispatcher.dispatch("billing", 0).invocations == 0
    produce(orders, "orders", 0, range(3, 5))
    dispatcher.dispatch("billing", 0)
    assert recorder.offsets() == [0, 1, 2, 3, 4]


def test_a_live_claim_of_another_token_is_left_alone(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2))
    now = int(orders.groups._clock.time() * 1000)  # the store's wall clock
    held = claims.acquire(orders.groups, "billing", TP, "other", now + 60_000, now)
    assert held is not None
    recorder = Recorder()
    result = make(orders, recorder).dispatch("billing", 0)
    assert result.busy and recorder.calls == []
    # the same token (the retry of the crashed holder's batch) takes it back at once
    assert make(orders, recorder, token="other").dispatch("billing", 0).delivered == 2


def test_an_expired_claim_is_taken_over(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2))
    assert claims.acquire(orders.groups, "billing", TP, "dead", 1, 0) is not None
    recorder = Recorder()
    assert make(orders, recorder).dispatch("billing", 0).delivered == 2


def test_force_takes_a_live_claim(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2))
    assert claims.acquire(orders.groups, "billing", TP, "dead", 10**14, 0) is not None
    assert make(orders, Recorder()).dispatch("billing", 0, force=True).delivered == 2


@pytest.mark.parametrize(("position", "hint", "expected"), [
    ("TRIM_HORIZON", None, [0, 1, 2, 3]),
    ("LATEST", None, []),
    ("LATEST", 2, [2, 3]),
])
def test_starting_positions(orders: Engine, position: str, hint: int | None,
                            expected: list[int]) -> None:
    produce(orders, "orders", 0, range(4))
    recorder = Recorder()
    make(orders, recorder, starting_position=position).dispatch("billing", 0, hint=hint)
    assert recorder.offsets() == expected
    assert committed(orders) == 4


def test_at_timestamp_starts_at_the_first_record_at_or_after_it(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2), ts=1_000)
    produce(orders, "orders", 0, range(2, 4), ts=5_000)
    recorder = Recorder()
    make(orders, recorder, starting_position="AT_TIMESTAMP",
         starting_position_timestamp_ms=4_000).dispatch("billing", 0)
    assert recorder.offsets() == [2, 3]


def test_activation_sets_every_partition_and_reports_the_backlog(orders: Engine) -> None:
    produce(orders, "orders", 1, range(3))
    dispatcher = make(orders, Recorder(), starting_position="TRIM_HORIZON")
    assert dispatcher.activate("billing") == [1]
    assert committed(orders, tp=TopicPartition("orders", 0)) == 0
    latest = make(orders, Recorder())
    latest.add(Trigger("other", "orders", function="m:f", starting_position="LATEST"),
               FunctionTarget(Recorder(), "s"))
    assert latest.activate("other") == []
    assert committed(orders, "other", TopicPartition("orders", 1)) == 3


def test_reset_offsets_fences_a_running_session_and_the_next_one_redelivers(
        orders: Engine) -> None:
    produce(orders, "orders", 0, range(4))
    admin = Admin(transport=orders)
    calls: list[list[int]] = []

    def reset_during_the_first_batch(event: dict[str, Any], context: Any) -> None:
        batch = [r["offset"] for r in event["records"]["orders-0"]]
        calls.append(batch)
        if len(calls) == 1:
            admin.reset_offsets("billing", topic="orders", partition=0, to_offset=1,
                                execute=True)

    dispatcher = make(orders, reset_during_the_first_batch, batch_size=2)
    result = dispatcher.dispatch("billing", 0)
    assert result.error.startswith("fenced") and committed(orders) == 1
    dispatcher.dispatch("billing", 0)
    assert calls == [[0, 1], [1, 2], [3]]


def test_a_poison_record_reaches_the_dead_letter_topic_with_its_coordinates(
        orders: Engine) -> None:
    orders.create_topic("orders.dlq", 3)
    produce(orders, "orders", 0, [{"n": 0}, {"n": 1, "poison": True}, {"n": 2}])
    recorder = Recorder(fail=lambda value: value.get("poison"))
    result = make(orders, recorder, batch_size=10, bisect_batch_on_function_error=True,
                  maximum_retry_attempts=2,
                  on_failure=TopicDestination("orders.dlq")).dispatch("billing", 0)
    assert (result.dead_lettered, committed(orders)) == (1, 3)
    assert [v["n"] for v in recorder.values] == [0, 2]
    dead = [r for p in range(3) for r in read_all(orders, "orders.dlq", p)]
    (record,) = dead
    assert json.loads(record.value or b"") == {"n": 1, "poison": True} and record.key == b"k"
    assert {k: v for k, v in record.headers if k.startswith("streamlet.dlq.")} == {
        "streamlet.dlq.topic": b"orders", "streamlet.dlq.partition": b"0",
        "streamlet.dlq.offset": b"1", "streamlet.dlq.error": b"RuntimeError: cannot handle "
        b"{'n': 1, 'poison': True}", "streamlet.dlq.attempts": b"3",
        "streamlet.dlq.trigger": b"billing"}


def test_dead_letters_to_an_sqs_queue(orders: Engine) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="dead.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    produce(orders, "orders", 0, [{"poison": True}])
    trigger = Trigger("billing", "orders", function="m:f", starting_position="TRIM_HORIZON",
                      maximum_retry_attempts=0, maximum_batching_window_ms=0,
                      on_failure=QueueDestination(url))
    dispatcher = Dispatcher(orders, [trigger],
                            {"billing": FunctionTarget(Recorder(lambda v: True), "s")},
                            {"billing": QueueDeadLetters(sqs)}, token="t", backoff_ms=(0, 0))
    assert dispatcher.dispatch("billing", 0).dead_lettered == 1
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert (body["topic"], body["partition"], body["offset"], body["attempts"]) == \
        ("orders", 0, 0, 1)
    assert "cannot handle" in body["error"]


def test_without_a_destination_exhausted_records_are_discarded_and_passed(
        orders: Engine) -> None:
    produce(orders, "orders", 0, [{"poison": True}, {"n": 1}])
    recorder = Recorder(fail=lambda value: value.get("poison"))
    result = make(orders, recorder, batch_size=1, maximum_retry_attempts=0).dispatch(
        "billing", 0)
    assert (result.discarded, committed(orders), recorder.values) == (1, 2, [{"n": 1}])


def test_a_budget_ends_the_session_and_the_retry_count_carries_over(orders: Engine) -> None:
    produce(orders, "orders", 0, [{"poison": True}])
    clock = ManualClock(1_000_000.0)
    recorder = Recorder(fail=lambda value: True)
    trigger = Trigger("billing", "orders", function="m:f", starting_position="TRIM_HORIZON",
                      maximum_retry_attempts=3, maximum_batching_window_ms=0,
                      on_failure=TopicDestination("orders.dlq"))
    orders.create_topic("orders.dlq", 1)
    dispatcher = Dispatcher(orders, [trigger], {"billing": FunctionTarget(recorder, "s")},
                            {"billing": TopicDeadLetters(orders)}, token="t", clock=clock,
                            sleep=clock.advance, backoff_ms=(1_000, 1_000))
    first = dispatcher.dispatch("billing", 0, deadline=clock.monotonic() + 3.5)
    assert first.wake_after_ms == 1_000 and first.dead_lettered == 0
    lease = orders.groups.lease("billing", TP)
    assert lease is not None and lease.metadata == "trigger;retry=0:3"  # 3 tries so far
    second = dispatcher.dispatch("billing", 0, deadline=clock.monotonic() + 60)
    assert second.dead_lettered == 1 and len(recorder.calls) == 4  # 1 try + 3 retries


def test_a_long_batching_window_asks_to_be_woken(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2))
    recorder = Recorder()
    result = make(orders, recorder, batch_size=10,
                  maximum_batching_window_ms=60_000).dispatch("billing", 0)
    assert recorder.calls == [] and result.wake_after_ms is not None
    assert 50_000 < result.wake_after_ms <= 60_000


def test_a_deleted_topic_stops_the_session(orders: Engine) -> None:
    produce(orders, "orders", 0, range(2))
    dispatcher = make(orders, Recorder())
    dispatcher.dispatch("billing", 0)
    orders.delete_topic("orders")
    result = dispatcher.dispatch("billing", 0)
    assert "TopicNotFound" in result.error and isinstance(result, Result)


def test_records_removed_by_retention_before_delivery_are_skipped(orders: Engine) -> None:
    produce(orders, "orders", 0, range(6))
    dispatcher = make(orders, Recorder(), starting_position="TRIM_HORIZON")
    dispatcher.activate("billing")
    orders.delete_records("orders", 0, 4)
    recorder = Recorder()
    dispatcher.targets["billing"] = FunctionTarget(recorder, "s")
    result = dispatcher.dispatch("billing", 0)
    assert recorder.offsets() == [4, 5] and result.skipped == 4


def _transactional(engine: Engine) -> Any:
    from streamlet import Producer
    producer = Producer(transport=engine, transactional_id="enricher", linger_ms=0)
    producer.init_transactions()
    return producer


def test_transactions_are_delivered_once_committed_and_aborted_ones_never(
        orders: Engine) -> None:
    producer = _transactional(orders)
    for outcome, n in (("abort", 0), ("commit", 1)):
        producer.begin_transaction()
        producer.send("orders", json.dumps(n).encode(), key=b"k", partition=0)
        producer.flush()
        getattr(producer, f"{outcome}_transaction")()
    produce(orders, "orders", 0, [2])
    recorder = Recorder()
    result = make(orders, recorder).dispatch("billing", 0)
    assert recorder.offsets() == [1, 2]
    assert committed(orders) == result.position == 3 and result.wake_after_ms is None


def test_an_open_transaction_holds_delivery_back_and_asks_to_be_woken(orders: Engine) -> None:
    produce(orders, "orders", 0, [0])
    producer = _transactional(orders)
    producer.begin_transaction()
    producer.send("orders", json.dumps(1).encode(), key=b"k", partition=0)
    producer.flush()
    recorder = Recorder()
    dispatcher = make(orders, recorder)
    result = dispatcher.dispatch("billing", 0)
    # the open transaction's record is not delivered, and its commit writes nothing to the
    # log that a stream would signal: the session asks to be woken to look again
    assert recorder.offsets() == [0] and committed(orders) == 1
    assert result.wake_after_ms is not None and result.wake_after_ms > 0
    producer.commit_transaction()
    dispatcher.dispatch("billing", 0)
    assert recorder.offsets() == [0, 1] and committed(orders) == 2
