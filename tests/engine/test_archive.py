"""Tiered storage in the engine: archiving to S3 segments, reads across tiers, retention."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from streamlet.clock import ManualClock as Clock
from streamlet.codec import decode_batch
from streamlet.engine import Engine, schema, topics
from streamlet.engine.archive import PURGE_GRACE_MS
from streamlet.errors import DataUnavailable, InvalidConfig, OffsetOutOfRange, Throttled
from streamlet.local import LocalPlatform, serialized_moto
from tests.batches import make_batch, values

T0 = float(int(time.time()))  # S3 stamps objects with the real time


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def tiered(clock: Clock) -> Iterator[Engine]:
    """An engine on in-process moto whose clock the test moves."""
    with mock_aws(), serialized_moto():
        s3 = boto3.client("s3", region_name="us-east-1")
        eng = Engine(boto3.client("dynamodb", region_name="us-east-1"), s3, clock=clock)
        eng.provision(s3)
        yield eng


def fill(engine: Engine, topic: str, batches: int, per_batch: int = 5, partition: int = 0,
         ts: int = 1_000, size: int = 10) -> None:
    for i in range(batches):
        vals = [f"{topic}-{i}-{j}-".encode().ljust(size, b"x") for j in range(per_batch)]
        engine.append(topic, partition, make_batch(vals, ts=ts + i * per_batch))


def fetch_all(engine: Engine, topic: str, partition: int = 0, start: int | None = None,
              max_bytes: int = 1 << 24) -> list[bytes]:
    """Every batch from ``start`` (default: the log start), fetch after fetch."""
    low, high = engine.watermarks(topic, partition)
    at = low if start is None else start
    out: list[bytes] = []
    while at < high:
        got = engine.fetch(topic, partition, at, max_bytes=max_bytes).batches
        assert got, f"empty fetch at {at} below the high watermark {high}"
        out += got
        last = decode_batch(topic, partition, got[-1])[-1].offset
        at = last + 1
    return out


def offsets(topic: str, batches: list[bytes]) -> list[int]:
    return [r.offset for b in batches for r in decode_batch(topic, 0, b)]


def objects(engine: Engine, prefix: str) -> list[str]:
    s3: Any = engine.blobs._s3
    listed = s3.list_objects_v2(Bucket=engine.names.bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def hot_items(engine: Engine, topic: str, partition: int = 0) -> list[dict[str, Any]]:
    meta = engine.topics.get(topic, fresh=True)
    return engine.log.query(meta, meta.ref(partition), schema.batch_sk(0),
                            schema.batch_sk(schema.MAX_OFFSET), 10_000)


def scan_log(engine: Engine) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = engine._ddb.scan(TableName=engine.names.log_table)["Items"]
    return found


def archived_and_high(engine: Engine, topic: str, partition: int = 0) -> tuple[int, int]:
    """(archive watermark, high watermark) from the partition item and the tail."""
    tail = engine.log.snapshot(topic, partition)[1]
    return tail.state.archived, tail.chain.next_offset


def drop_hot_items(engine: Engine, topic: str, partition: int = 0) -> int:
    """What DynamoDB TTL does to batch items once they expire."""
    found = hot_items(engine, topic, partition)
    for item in found:
        engine._ddb.delete_item(TableName=engine.names.log_table,
                                Key={schema.PK: item[schema.PK], schema.SK: item[schema.SK]})
    return len(found)


def test_archived_reads_are_byte_identical_inline_and_s3(tiered: Engine, clock: Clock) -> None:
    tiered.create_topic("t", 1, {"inline.max.bytes": 200})
    fill(tiered, "t", 6, size=10)          # small batches: inline in DynamoDB
    fill(tiered, "t", 4, size=100, ts=50)  # > 200 bytes: S3 blobs
    before = fetch_all(tiered, "t")
    assert len(objects(tiered, "blobs/")) == 4

    clock.now += 3600
    [report] = tiered.archive("t", force=True)
    assert [(s.base_offset, s.last_offset) for s in report.segments] == [(0, 49)]
    assert (report.segments[0].min_timestamp, report.segments[0].max_timestamp) == (50, 1029)
    assert report.archived_offset == 50 == report.high_watermark
    assert objects(tiered, "segments/") == [report.segments[0].key]
    assert report.blobs_deleted == 4 and objects(tiered, "blobs/") == []

    assert drop_hot_items(tiered, "t") == 10  # TTL expiry: reads must not need them
    assert fetch_all(tiered, "t") == before
    assert fetch_all(tiered, "t", max_bytes=1) == before
    assert offsets("t", fetch_all(tiered, "t", start=17)) == list(range(15, 50))


def test_hot_batches_expire_by_ttl_set_at_append(tiered: Engine, clock: Clock) -> None:
    tiered.create_topic("t", 1, {"local.retention.ms": 7_200_000, "segment.ms": 3_600_000})
    tiered.create_topic("keep", 1, {"local.retention.ms": -1})
    fill(tiered, "t", 1)
    fill(tiered, "keep", 1)
    [item] = hot_items(tiered, "t")
    assert int(item[schema.TTL]["N"]) == int(T0) + 7200
    assert int(item[schema.A_APPEND_MAX]["N"]) == int(T0 * 1000)
    assert schema.TTL not in hot_items(tiered, "keep")[0]


def test_local_retention_must_leave_time_to_archive(tiered: Engine) -> None:
    with pytest.raises(InvalidConfig, match=r"local.retention.ms=3600000 .*segment.ms"):
        tiered.create_topic("t", 1, {"local.retention.ms": 3_600_000})
    assert tiered.list_topics() == []


def test_fetch_crosses_the_tier_boundary(tiered: Engine, clock: Clock) -> None:
    tiered.create_topic("t", 1)
    fill(tiered, "t", 5)
    tiered.archive("t", force=True)
    fill(tiered, "t", 5, ts=100)
    assert archived_and_high(tiered, "t") == (25, 50)
    batches = tiered.fetch("t", 0, 12).batches
    assert offsets("t", batches) == list(range(10, 50))
    assert offsets("t", fetch_all(tiered, "t", max_bytes=1)) == list(range(50))


def test_segment_ms_and_segment_bytes_decide_when_to_roll(tiered: Engine, clock: Clock) -> None:
    tiered.create_topic("slow", 1, {"segment.ms": 60_000})
    tiered.create_topic("big", 1, {"segment.bytes": 1_000})
    fill(tiered, "slow", 3)
    fill(tiered, "big", 20)  # ~150 B per batch: 3,000 B of hot bytes
    reports = {r.topic: r for r in tiered.archive()}
    assert reports["slow"].segments == []
    sizes = [s.size for s in reports["big"].segments]
    assert len(sizes) >= 2 and all(1_000 <= n < 1_200 for n in sizes[:-1])
    assert reports["big"].archived_offset > 0

    clock.now += 59
    [waiting] = tiered.archive("slow")
    assert waiting.segments == [] and waiting.unarchived_age_ms == 59_000  # the lag metric
    clock.now += 2
    [report] = tiered.archive("slow")
    assert [(s.base_offset, s.last_offset) for s in report.segments] == [(0, 14)]
    assert report.unarchived_age_ms == 0
    assert tiered.archive("slow")[0].segments == []  # nothing hot any more


def test_segment_reads_use_byte_ranges(tiered: Engine) -> None:
    tiered.create_topic("t", 1, {"segment.bytes": 64 * 1024 * 1024})
    for i in range(60):  # 60 batches of ~10 KiB (S3 blobs until archived)
        tiered.append("t", 0, make_batch(values(f"v{i}-" + "x" * 2000, 5), ts=i * 5))
    [report] = tiered.archive("t", force=True)
    [segment] = report.segments
    ranges: list[str] = []
    tiered.segments._s3.meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **_: ranges.append(params.get("Range", "whole object")))
    tiered.segments._indexes.clear()
    got = tiered.fetch("t", 0, 250, max_bytes=1024).batches
    assert offsets("t", got) == list(range(250, 255))
    read = sum(int(b) - int(a) + 1 for a, b in (r[6:].split("-") for r in ranges[1:]))
    assert ranges[0].startswith(f"bytes={segment.size}-")  # the index, once
    assert read < segment.size / 4, (read, segment.size)


def test_offsets_for_times_across_tiers(tiered: Engine) -> None:
    tiered.create_topic("t", 1, {"segment.bytes": 400})
    fill(tiered, "t", 12, per_batch=4, ts=10_000)  # record i has timestamp 10_000 + i
    assert len(tiered.archive("t")[0].segments) == 3  # size-based rolls
    fill(tiered, "t", 4, per_batch=4, ts=10_048)   # hot
    assert archived_and_high(tiered, "t") == (48, 64)
    for ts in range(9_990, 10_070):
        expected = max(ts - 10_000, 0) if ts < 10_064 else None
        assert tiered.offset_for_time("t", 0, ts) == expected, ts


def test_retention_ms_expires_whole_segments(tiered: Engine, clock: Clock) -> None:
    now_ms = int(T0 * 1000)
    tiered.create_topic("t", 1, {"retention.ms": 60_000})
    fill(tiered, "t", 4, ts=now_ms - 120_000)
    tiered.archive("t", force=True)
    fill(tiered, "t", 4, ts=now_ms - 10_000)
    tiered.archive("t", force=True)
    fill(tiered, "t", 2, ts=now_ms - 500_000)  # old timestamps but hot: never expired hot
    [report] = tiered.enforce_retention("t")
    assert (report.log_start_before, report.log_start_after) == (0, 20)
    assert report.segments_deleted == 1
    assert [k.rsplit("/", 1)[1] for k in objects(tiered, "segments/")] == [f"{20:020d}.seg"]
    assert tiered.watermarks("t", 0) == (20, 50)
    with pytest.raises(OffsetOutOfRange, match=r"Offset 5 .*'t' partition 0 .*20\.\.50"):
        tiered.fetch("t", 0, 5)
    assert offsets("t", fetch_all(tiered, "t")) == list(range(20, 50))
    assert tiered.offset_for_time("t", 0, 0) == 20
    clock.now += 3600
    [report] = tiered.enforce_retention("t")
    assert report.log_start_after == 40 and objects(tiered, "segments/") == []


def test_retention_bytes_keeps_the_newest_and_minus_one_keeps_all(tiered: Engine) -> None:
    tiered.create_topic("sized", 1, {"retention.bytes": 1_000, "segment.bytes": 400})
    tiered.create_topic("forever", 1, {"retention.ms": -1, "segment.bytes": 400})
    for topic in ("sized", "forever"):
        fill(tiered, topic, 20, ts=0 if topic == "forever" else int(T0 * 1000))
        tiered.archive(topic, force=True)
    reports = {r.topic: r for r in tiered.enforce_retention()}
    assert reports["forever"].log_start_after == 0 and reports["forever"].segments_deleted == 0
    kept = list(tiered.archiver._manifest.segments(tiered.topics.get("sized").ref(0)))
    kept_bytes = sum(s.size for s in kept)
    assert kept_bytes >= 1_000 > kept_bytes - kept[0].size
    assert tiered.watermarks("sized", 0) == (kept[0].base_offset, 100)
    assert offsets("sized", fetch_all(tiered, "sized")) == list(range(kept[0].base_offset, 100))


def test_delete_records_trims_both_tiers(tiered: Engine) -> None:
    tiered.create_topic("t", 1, {"segment.bytes": 400})
    fill(tiered, "t", 20)
    tiered.archive("t", force=True)
    segments_before = len(objects(tiered, "segments/"))
    assert tiered.delete_records("t", 0, 37) == 37
    assert tiered.watermarks("t", 0) == (37, 100)
    assert len(objects(tiered, "segments/")) < segments_before
    assert offsets("t", tiered.fetch("t", 0, 37).batches)[0] <= 37
    with pytest.raises(OffsetOutOfRange):
        tiered.fetch("t", 0, 36)
    assert tiered.delete_records("t", 0, 10) == 37  # never backwards
    with pytest.raises(OffsetOutOfRange, match="Offset 101"):
        tiered.delete_records("t", 0, 101)
    fill(tiered, "t", 2)
    assert tiered.delete_records("t", 0, -1) == 110
    assert tiered.fetch("t", 0, 110).batches == []
    assert objects(tiered, "segments/") == []
    fill(tiered, "t", 1)
    assert offsets("t", fetch_all(tiered, "t")) == list(range(110, 115))


def test_archiving_after_a_trim_starts_at_the_log_start(tiered: Engine) -> None:
    tiered.create_topic("t", 1)
    fill(tiered, "t", 6)
    tiered.delete_records("t", 0, 12)  # inside the third batch (10..14)
    [report] = tiered.archive("t", force=True)
    assert [(s.base_offset, s.last_offset) for s in report.segments] == [(10, 29)]
    assert offsets("t", fetch_all(tiered, "t"))[:3] == [10, 11, 12]


def test_deleting_a_topic_purges_its_items_and_objects_after_the_grace(
        tiered: Engine, clock: Clock) -> None:
    tiered.create_topic("t", 2, {"inline.max.bytes": 0})
    for p in (0, 1):
        fill(tiered, "t", 3, partition=p)
    tiered.archive("t", force=True)
    for p in (0, 1):
        fill(tiered, "t", 1, partition=p)
    assert len(objects(tiered, "segments/")) == 2 and len(objects(tiered, "blobs/")) == 8
    tiered.delete_topic("t")
    tiered.create_topic("t", 1)
    assert tiered.watermarks("t", 0) == (0, 0)
    assert tiered.scheduled_pass()[2] == []  # sealed: nothing purged within the grace
    assert len(objects(tiered, "segments/")) == 2
    clock.now += PURGE_GRACE_MS / 1000
    assert tiered.scheduled_pass()[2] == []
    assert objects(tiered, "segments/") == [] and objects(tiered, "blobs/") == []
    assert [i["pk"]["S"].split("/")[1] for i in scan_log(tiered)] == [
        tiered.topics.get("t").topic_id]  # only the new incarnation's partition item


def test_a_throttled_blob_listing_is_a_retriable_error(tiered: Engine, clock: Clock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """S3's SlowDown while the archiver lists blobs (after botocore's retries) is Throttled,
    which a scheduled pass reports per partition, not a raw ClientError that ends it."""
    tiered.create_topic("t", 1, {"inline.max.bytes": 100})
    fill(tiered, "t", 3, size=100)  # 5 x 100 B per batch: every batch is an S3 blob
    expected = fetch_all(tiered, "t")
    s3 = tiered.blobs._s3
    real = s3.get_paginator

    class SlowDown:
        def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
            raise ClientError({"Error": {"Code": "SlowDown",
                                         "Message": "Please reduce your request rate."}},
                              "ListObjectsV2")

    monkeypatch.setattr(s3, "get_paginator", lambda name: SlowDown())
    with pytest.raises(Throttled, match=r"list or delete objects under .*\(SlowDown\)"):
        tiered.archive("t", force=True)
    assert fetch_all(tiered, "t") == expected  # the segment was recorded before the listing
    monkeypatch.setattr(s3, "get_paginator", real)
    clock.now += 3600  # past the blobs' grace period
    [report] = tiered.archive("t", force=True)
    assert report.blobs_deleted == 3 and objects(tiered, "blobs/") == []
    assert fetch_all(tiered, "t") == expected


def test_a_hot_batch_lost_before_archiving_is_reported_not_skipped(tiered: Engine) -> None:
    tiered.create_topic("t", 1)
    fill(tiered, "t", 3)
    first = hot_items(tiered, "t")[1]
    tiered._ddb.delete_item(TableName=tiered.names.log_table,
                            Key={schema.PK: first[schema.PK], schema.SK: first[schema.SK]})
    with pytest.raises(DataUnavailable, match=r"'t' partition 0: offset 0 .*5\.\.9"):
        tiered.fetch("t", 0, 0)
    with pytest.raises(DataUnavailable, match=r"5\.\.9"):
        tiered.archive("t", force=True)
    assert archived_and_high(tiered, "t")[0] == 0 and objects(tiered, "segments/") == []


def test_the_local_platform_archives_on_a_timer(live_platform: LocalPlatform,
                                                topic: str) -> None:
    engine = live_platform.engine()
    engine.create_topic(topic, 1, {"segment.bytes": 100})  # due as soon as it is written
    fill(engine, topic, 4, ts=int(time.time() * 1000))  # recent: retention keeps it
    live_platform.start_archiver(interval_s=0.05)
    try:
        deadline = time.monotonic() + 30
        while archived_and_high(engine, topic)[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        live_platform.stop_archiver()
    assert archived_and_high(engine, topic)[0] == 20
    assert offsets(topic, fetch_all(engine, topic)) == list(range(20))


def test_a_sequential_read_reads_each_batch_once_in_both_tiers(tiered: Engine) -> None:
    """A fetch stops before a batch that would not fit, instead of paying for a Query page
    or a ranged GET it would mostly throw away (the next fetch reads it again)."""
    tiered.create_topic("t", 1, {"inline.max.bytes": 358_400})
    for i in range(40):  # ~61 KB each: 16 fill a 1 MB Query page
        tiered.append("t", 0, make_batch([random.randbytes(6_000) for _ in range(10)],
                                         ts=i * 10))
    ddb_items, s3_bytes = [], []
    forward: list[bool] = []
    tiered._ddb.meta.events.register(  # fetches read forward; watermarks read the tail back
        "before-parameter-build.dynamodb.Query",
        lambda params, **_: forward.append(params.get("ScanIndexForward", True)))
    tiered._ddb.meta.events.register(
        "after-call.dynamodb.Query",
        lambda parsed, **_: ddb_items.append(forward[-1] * sum(
            i["sk"]["S"].startswith("b/") for i in parsed.get("Items", []))))
    tiered.segments._s3.meta.events.register(
        "after-call.s3.GetObject",
        lambda parsed, **_: s3_bytes.append(int(parsed["ContentLength"])))
    stored = sum(len(b) for b in fetch_all(tiered, "t", max_bytes=1 << 20))
    assert sum(ddb_items) == 40, ddb_items  # each batch item in exactly one Query page

    [report] = tiered.archive("t", force=True)
    [segment] = report.segments
    tiered.segments._indexes.clear()
    s3_bytes.clear()
    ddb_items.clear()
    assert sum(len(b) for b in fetch_all(tiered, "t", max_bytes=1 << 20)) == stored
    # the hot copies (still there until their TTL) are paid for by one Query page at most:
    # the first fetch's, before the reader learnt the archive watermark
    assert sum(ddb_items) <= 16, ddb_items
    assert stored == segment.size
    index, *data = s3_bytes  # the index once, then the batches
    assert index < 1_000 and sum(data) <= segment.size * 1.1, (s3_bytes, segment.size)


def test_a_pass_stops_at_the_high_watermark_it_started_with(tiered: Engine,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    tiered.create_topic("t", 1, {"segment.bytes": 100})
    fill(tiered, "t", 4)
    real_snapshot = tiered.log.snapshot

    def busy_snapshot(topic: str, partition: int) -> Any:  # a producer never pausing
        fill(tiered, "t", 1)
        return real_snapshot(topic, partition)

    monkeypatch.setattr(tiered.log, "snapshot", busy_snapshot)
    for force in (True, False):
        [report] = tiered.archive("t", force=force)
        assert report.segments and report.archived_offset < report.high_watermark
    monkeypatch.undo()
    assert offsets("t", fetch_all(tiered, "t")) == list(range(tiered.watermarks("t", 0)[1]))


def test_config_changes_reach_other_engines_appends_and_the_next_passes(
        tiered: Engine) -> None:
    """inline.max.bytes, segment.bytes and retention.bytes changed after creation are used
    by another engine's next append (once its 5 s topic cache has expired: another
    Lambda) and by the next archiver and retention passes, with nothing restarted."""
    other = Engine(tiered._ddb, tiered.segments._s3)
    tiered.create_topic("t", 1)
    big = make_batch([random.randbytes(4_000)])  # under the default 8 KiB inline limit

    def blobs() -> int:
        listed = tiered.segments._s3.list_objects_v2(Bucket=tiered.names.bucket,
                                                     Prefix="blobs/")
        return int(listed.get("KeyCount", 0))

    other.append("t", 0, big)
    assert blobs() == 0 and not tiered.archive("t")[0].segments  # inline; nothing due
    tiered.alter_topic_config("t", {"inline.max.bytes": 1024, "segment.bytes": 1000,
                                    "retention.bytes": 0})
    time.sleep(topics.CACHE_SECONDS + 0.2)
    other.append("t", 0, big)
    assert blobs() == 1  # the other engine's append went to S3
    [report] = other.archive("t")  # not forced: segment.bytes=1000 makes it due
    assert report.segments and report.archived_offset == 2
    [expired] = other.enforce_retention("t")
    assert expired.segments_deleted >= 1 and expired.log_start_after == 2
