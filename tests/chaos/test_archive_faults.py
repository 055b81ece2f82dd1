"""Invariant 6 under faults: the archiver crashes before and after every AWS call it makes,
a re-run completes the job, and readers never see a gap, a changed byte or an orphan."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest

from streamlet import Consumer, Producer, TopicPartition
from streamlet.clock import ShiftedClock
from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.errors import RetriableError
from streamlet.local import LocalPlatform
from tests.batches import make_batch
from tests.harness.faults import FaultPlan, FaultRates, SimulatedCrash, install

SEED = int(os.environ.get("STREAMLET_CHAOS_SEED", "7"))
LATER = 3600.0  # the archiver's clock runs an hour ahead: every archived blob is past grace


def archiver(platform: LocalPlatform, plan: FaultPlan | None = None) -> Engine:
    dynamodb, s3 = platform.client("dynamodb"), platform.client("s3")
    if plan is not None:
        install(dynamodb, plan)
        install(s3, plan)
    return Engine(dynamodb, s3, platform.names, clock=ShiftedClock(LATER))


def prepare(platform: LocalPlatform, topic: str) -> list[bytes]:
    """Six batches, some inline and some in S3 blobs, small segments: 2 per run."""
    engine = platform.engine()
    engine.create_topic(topic, 1, {"inline.max.bytes": 300, "segment.bytes": 1_000})
    for i in range(6):
        size = 120 if i % 3 else 10  # 5 x 120 B > 300 B: every third batch stays inline
        vals = [f"{i}-{j}".encode().ljust(size, b".") for j in range(5)]
        engine.append(topic, 0, make_batch(vals, ts=1_000 + 5 * i))
    return read_all(engine, topic, max_bytes=1)


def read_all(engine: Engine, topic: str, max_bytes: int = 1 << 24) -> list[bytes]:
    low, high = engine.watermarks(topic, 0)
    out, at = [], low
    while at < high:
        got = engine.fetch(topic, 0, at, max_bytes=max_bytes).batches
        out += got
        at = decode_batch(topic, 0, got[-1])[-1].offset + 1
    return out


def check_tiers(platform: LocalPlatform, topic: str, expected: list[bytes],
                orphans_allowed: bool) -> tuple[int, int]:
    """Every offset reads back byte-identical; manifest and objects agree."""
    engine = platform.engine()
    assert read_all(engine, topic) == expected
    meta, tail = engine.log.snapshot(topic, 0)
    archived, high = tail.state.archived, tail.chain.next_offset
    segments = list(engine.archiver._manifest.segments(meta.ref(0)))
    by_base = {decode_batch(topic, 0, b)[0].offset: b for b in expected}
    at = 0
    for segment in segments:  # contiguous from 0, ending at the watermark, same bytes
        assert segment.base_offset == at, (segment, at)
        stored, _ = engine.segments.read(segment, segment.base_offset, 1 << 24)
        assert stored == [by_base[decode_batch(topic, 0, b)[0].offset] for b in stored]
        at = segment.last_offset + 1
    assert at == archived
    s3: Any = platform.client("s3")
    listed = s3.list_objects_v2(Bucket=platform.names.bucket,
                                Prefix=meta.ref(0).segment_prefix)
    keys = {o["Key"] for o in listed.get("Contents", [])}
    recorded = {s.key for s in segments}
    assert recorded <= keys, "a manifest entry points at a missing object"
    if not orphans_allowed:
        assert keys == recorded, f"orphan segments: {sorted(keys - recorded)}"
    return archived, high


def count_calls(platform: LocalPlatform, topic: str) -> int:
    prepare(platform, topic)
    plan = FaultPlan()
    archiver(platform, plan).archive(topic, force=True)
    return len(plan.log)


@pytest.mark.parametrize("crash", ["crash_before", "crash_after"])
def test_archiver_crash_at_every_call_then_rerun(live_platform: LocalPlatform, topic: str,
                                                 crash: str) -> None:
    calls = count_calls(live_platform, f"{topic}-count")
    assert calls >= 12  # heads, queries, blob GETs, PUTs, transactions, list, delete
    for at in range(calls):
        name = f"{topic}-{at}"
        expected = prepare(live_platform, name)
        plan = FaultPlan.scripted(["ok"] * at + [crash])  # type: ignore[arg-type]
        with pytest.raises(SimulatedCrash):
            archiver(live_platform, plan).archive(name, force=True)
        check_tiers(live_platform, name, expected, orphans_allowed=True)

        archiver(live_platform).archive(name, force=True)
        archived, high = check_tiers(live_platform, name, expected, orphans_allowed=False)
        assert archived == high == 30, (crash, at, plan.log[-1])
        meta = live_platform.engine().topics.get(name)
        s3: Any = live_platform.client("s3")
        blobs = s3.list_objects_v2(Bucket=live_platform.names.bucket,
                                   Prefix=meta.ref(0).blob_prefix)
        assert blobs.get("KeyCount", 0) == 0, f"blobs left after the re-run at call {at}"


def test_producers_and_consumers_run_while_archiving_under_faults(
        live_platform: LocalPlatform, topic: str) -> None:
    engine = live_platform.engine()
    engine.create_topic(topic, 2, {"segment.bytes": 2_000, "inline.max.bytes": 500})
    total, stop, errors = 600, threading.Event(), list[Exception]()
    rates = FaultRates(throttle=0.05, timeout_before=0.05, lost_ack=0.05, ambiguous_500=0.05)
    plan = FaultPlan(seed=SEED, rates=rates)
    rolled: list[int] = []

    def archive_loop() -> None:
        rng, faulty = random.Random(SEED), archiver(live_platform, plan)
        while not stop.is_set():
            try:
                rolled.extend(len(r.segments) for r in faulty.archive(topic, force=True))
            except RetriableError:
                pass
            except Exception as e:  # reported by the assertion below
                errors.append(e)
            time.sleep(rng.uniform(0.0, 0.05))

    thread = threading.Thread(target=archive_loop, daemon=True)
    thread.start()
    seen: dict[int, list[int]] = {0: [], 1: []}
    with Producer(live_platform.endpoint, linger_ms=2) as producer, \
            Consumer(endpoint=live_platform.endpoint, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        for i in range(total):
            producer.send(topic, f"v{i}".encode(), key=f"k{i % 7}".encode())
            if i % 20 == 19:  # a paced load, so archiver passes interleave with it
                producer.flush()
                _drain(consumer, seen)
                time.sleep(0.05)
            if i % 120 == 119:  # and at checkpoints, wait for a pass that rolls a segment
                _wait_for_a_roll(rolled, errors)
        producer.flush()
        deadline = time.monotonic() + 60
        while sum(map(len, seen.values())) < total and time.monotonic() < deadline:
            _drain(consumer, seen)
    stop.set()
    thread.join(timeout=30)
    assert errors == []
    assert sum(rolled) >= 5 and sum(plan.counts().values()) > 5
    for partition, got in seen.items():
        assert got == list(range(len(got))), f"partition {partition}: gap or repeat"
    assert sum(map(len, seen.values())) == total
    archiver(live_platform).archive(topic, force=True)
    for partition in (0, 1):
        assert [r.offset for b in engine.fetch(topic, partition, 0, 1 << 24).batches
                for r in decode_batch(topic, partition, b)] == seen[partition]


def _wait_for_a_roll(rolled: list[int], errors: list[Exception]) -> None:
    """Block until the archiver thread rolls at least one more segment (or fails)."""
    before, deadline = sum(rolled), time.monotonic() + 30
    while sum(rolled) == before and not errors and time.monotonic() < deadline:
        time.sleep(0.02)


def _drain(consumer: Consumer, seen: dict[int, list[int]]) -> None:
    for record in consumer.poll(timeout=0.05):
        seen[record.partition].append(record.offset)
