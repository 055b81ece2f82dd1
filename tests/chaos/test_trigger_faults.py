"""Triggers under faults (issue 14, point 7): a function that fails intermittently and a
poison record while the dispatcher's storage throttles, drops and loses replies; the
dispatcher crashing before and after each of its AWS calls; a sink fed while throttled.

What must hold: every good record is delivered at least once, in order per partition; the
poison record reaches the dead-letter topic with its coordinates after the configured
attempts; no record is skipped; nothing is delivered again after it succeeded unless a
fault was injected since."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from streamlet import Producer
from streamlet.engine import Engine
from streamlet.fetching import fetch_records
from streamlet.local import LocalPlatform
from streamlet.records import TopicPartition
from streamlet.triggers import (
    Dispatcher,
    FunctionTarget,
    TopicDeadLetters,
    TopicDestination,
    Trigger,
)
from streamlet.triggers.local import LocalTriggers
from streamlet.triggers.sinks import S3Sink
from tests.harness.faults import FaultPlan, FaultRates, SimulatedCrash, install

SEED = int(os.environ.get("STREAMLET_CHAOS_SEED", "7"))
POISON = {"poison": True}


@dataclass
class Call:
    partition: int
    offsets: list[int]
    ok: bool
    faults: int
    """Faults injected so far when the call returned."""


@dataclass
class Handler:
    """Fails every third call (never twice in a row) and on the poison record."""

    plan: FaultPlan | None = None
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def faults(self) -> int:
        return sum(self.plan.counts().values()) if self.plan else 0

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        import base64

        batch = [r for rs in event["records"].values() for r in rs]
        values = [json.loads(base64.b64decode(r["value"])) for r in batch]
        with self.lock:
            fail = len(self.calls) % 3 == 1 or POISON in values
            self.calls.append(Call(batch[0]["partition"], [r["offset"] for r in batch],
                                   not fail, self.faults()))
        if fail:
            raise RuntimeError("intermittent" if POISON not in values else "poison")


def check(handler: Handler, good: dict[int, list[int]], poison: tuple[int, int],
          dead: list[Any], attempts: int, faulty: bool) -> None:
    """The issue's invariants over what the handler saw and the dead-letter topic holds."""
    for partition, offsets in good.items():
        done: list[int] = []
        first_success: dict[int, int] = {}
        for call in (c for c in handler.calls if c.partition == partition and c.ok):
            # in order: a batch starts where delivery stands or earlier (a redelivery)
            assert call.offsets[0] <= (max(done) + 1 if done else offsets[0]) or \
                (partition, call.offsets[0] - 1) == poison, (partition, call.offsets, done)
            for offset in call.offsets:
                if offset in first_success:  # delivered again after it succeeded
                    assert faulty and call.faults > first_success[offset], (partition, offset)
                else:
                    first_success[offset] = call.faults
            done += call.offsets
        assert sorted(first_success) == offsets, f"partition {partition}: skipped or lost"
    coordinates = {(r.header("streamlet.dlq.partition"), r.header("streamlet.dlq.offset"))
                   for r in dead}
    assert coordinates == {(str(poison[0]).encode(), str(poison[1]).encode())}
    assert {r.header("streamlet.dlq.attempts") for r in dead} == {str(attempts).encode()}
    assert len(dead) == 1 or faulty


def setup(platform: LocalPlatform, topic: str, per_partition: int, partitions: int = 2
          ) -> tuple[dict[int, list[int]], tuple[int, int]]:
    """Numbered records round-robin over the partitions; the poison is the last partition's
    fourth record."""
    engine = platform.engine()
    engine.create_topic(topic, partitions)
    engine.create_topic(f"{topic}.dlq", 1)
    poison = (partitions - 1, 3)
    with Producer(transport=engine, linger_ms=5) as producer:
        for i in range(per_partition * partitions):
            at = (i % partitions, i // partitions)
            value = POISON if at == poison else {"n": i}
            producer.send(topic, json.dumps(value).encode(), partition=at[0])
    good = {p: [o for o in range(per_partition) if (p, o) != poison] for p in range(partitions)}
    return good, poison


_clients: dict[tuple[int, str], Any] = {}


def faulty_engine(platform: LocalPlatform, plan: FaultPlan) -> Engine:
    """An engine whose clients go through ``plan`` (the clients are made once: boto3 takes
    tens of milliseconds per client)."""
    made = [_clients.setdefault((id(platform), s), platform.client(s)) for s in ("dynamodb", "s3")]
    return Engine(install(made[0], plan), install(made[1], plan), platform.names)


def run_until_done(dispatcher: Dispatcher, engine: Engine, name: str, topic: str,
                   rounds: int = 300) -> None:
    """Sessions (as wake-ups would start them) until every partition is committed to its end."""
    partitions = engine.topic_metadata(topic).partitions
    for _ in range(rounds):
        pending = [p for p in range(partitions)
                   if _committed(engine, name, TopicPartition(topic, p))
                   != engine.watermarks(topic, p)[1]]
        if not pending:
            return
        for partition in pending:
            dispatcher.dispatch(name, partition)
    raise AssertionError("the trigger never caught up")


def _committed(engine: Engine, group: str, tp: TopicPartition) -> int | None:
    lease = engine.groups.lease(group, tp)
    return None if lease is None else lease.committed


def dead_letters(engine: Engine, topic: str, trigger: str) -> list[Any]:
    records = fetch_records(engine, TopicPartition(f"{topic}.dlq", 0), 0, "earliest",
                            1 << 24).records
    return [r for r in records if r.header("streamlet.dlq.trigger") == trigger.encode()]


def trigger(name: str, topic: str, retries: int) -> Trigger:
    return Trigger(name, topic, function="chaos:handler", batch_size=4,
                   starting_position="TRIM_HORIZON", maximum_batching_window_ms=0,
                   bisect_batch_on_function_error=True, maximum_retry_attempts=retries,
                   on_failure=TopicDestination(f"{topic}.dlq"))


def dispatcher_for(engine: Engine, handler: Handler, name: str, topic: str,
                   retries: int = 3, token: str = "esm-batch-1") -> Dispatcher:
    return Dispatcher(engine, [trigger(name, topic, retries)],
                      {name: FunctionTarget(handler, "streamlet://chaos")},
                      {name: TopicDeadLetters(engine)}, token=token, backoff_ms=(0, 0))


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "faults"])
def test_intermittent_failures_and_a_poison_record_under_storage_faults(
        live_platform: LocalPlatform, topic: str, faulty: bool) -> None:
    good, poison = setup(live_platform, topic, per_partition=12)
    rates = FaultRates(throttle=0.06, timeout_before=0.04, lost_ack=0.04, ambiguous_500=0.04)
    plan = FaultPlan(SEED, rates if faulty else FaultRates())
    engine = faulty_engine(live_platform, plan)
    handler = Handler(plan)
    run_until_done(dispatcher_for(engine, handler, "chaos", topic), live_platform.engine(),
                   "chaos", topic)
    check(handler, good, poison, dead_letters(live_platform.engine(), topic, "chaos"),
          attempts=4, faulty=faulty)
    if faulty:
        assert sum(plan.counts().values()) > 10  # the faults did happen
    else:
        assert sum(len(c.offsets) for c in handler.calls if c.ok) == sum(map(len, good.values()))


def clean_run_calls(platform: LocalPlatform, topic: str) -> int:
    """How many AWS requests a crash-free run of the scenario makes."""
    plan = FaultPlan.scripted([])
    run_until_done(dispatcher_for(faulty_engine(platform, plan), Handler(), "count", topic,
                                  retries=1), platform.engine(), "count", topic, rounds=5)
    return len(plan.log)


def test_the_dispatcher_crashes_before_and_after_each_aws_call(live_platform: LocalPlatform,
                                                                topic: str) -> None:
    # one partition: its reads, claims, commits and the dead-letter append (every kind of
    # call the dispatcher makes), each crashed before and after
    good, poison = setup(live_platform, topic, per_partition=5, partitions=1)
    calls = clean_run_calls(live_platform, topic)
    assert calls > 12
    clean = live_platform.engine()
    for index in range(calls):
        for kind in ("crash_before", "crash_after"):
            name = f"crash-{index}-{kind[6:]}"
            plan = FaultPlan.scripted(["ok"] * index + [kind])  # type: ignore[list-item]
            handler = Handler(plan)  # counts the crash as the fault redeliveries follow
            with pytest.raises(SimulatedCrash):
                run_until_done(dispatcher_for(faulty_engine(live_platform, plan), handler,
                                              name, topic, retries=1), clean, name, topic)
            # Lambda retries the stream batch: the same token, a fresh process
            run_until_done(dispatcher_for(clean, handler, name, topic, retries=1), clean, name,
                           topic)
            check(handler, good, poison, dead_letters(clean, topic, name), attempts=2,
                  faulty=True)


def test_an_s3_sink_fed_while_throttled_writes_every_record_once(
        live_platform: LocalPlatform, topic: str) -> None:
    engine = live_platform.engine()
    engine.create_topic(topic, 1)
    engine.create_topic(f"{topic}.dlq", 1)
    bucket = f"{topic}-lake".lower()
    s3: Any = live_platform.client("s3")
    s3.create_bucket(Bucket=bucket)
    plan = FaultPlan(SEED, FaultRates(throttle=0.25, timeout_before=0.05))
    sink_trigger = Trigger("lake", topic, sink={"kind": "s3", "bucket": bucket},
                           batch_size=7, maximum_batching_window_ms=0,
                           starting_position="TRIM_HORIZON",
                           on_failure=TopicDestination(f"{topic}.dlq"))
    runner = LocalTriggers(faulty_engine(live_platform, plan), live_platform.client("dynamodb"),
                           live_platform.client("dynamodbstreams"), poll_interval_s=0.02,
                           backoff_ms=(10, 50))
    runner.add(sink_trigger, target=S3Sink(install(live_platform.client("s3"), plan), bucket))
    with runner:
        with Producer(transport=engine, linger_ms=2) as producer:
            for i in range(40):
                producer.send(topic, json.dumps({"n": i}).encode())
        runner.drain(timeout=60)
    offsets = [line["offset"] for line in _lines(s3, bucket)]
    assert sorted(offsets) == list(range(40)), "a record was lost or written twice"
    assert engine.groups.lease("lake", TopicPartition(topic, 0)).committed == 40  # type: ignore[union-attr]
    assert plan.counts()["throttle"] > 5


def _lines(s3: Any, bucket: str) -> Iterator[dict[str, Any]]:
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        yield from (json.loads(line) for line in gzip.decompress(body).splitlines())
