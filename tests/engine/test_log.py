"""Appends, idempotence, conditional appends and fetches in the engine."""

from __future__ import annotations

import time

import pytest

from streamlet.codec import decode_batch
from streamlet.engine import Engine, schema
from streamlet.errors import (
    AppendConflict,
    InvalidRecord,
    OffsetMismatch,
    OffsetOutOfRange,
    RecordTooLarge,
)
from streamlet.records import TimestampType
from tests.batches import make_batch, values


@pytest.fixture
def orders(engine: Engine) -> Engine:
    engine.create_topic("orders", 2)
    return engine


def read_all(engine: Engine, topic: str = "orders", partition: int = 0) -> list[tuple[int, bytes]]:
    out = []
    for batch in engine.fetch(topic, partition, engine.watermarks(topic, partition)[0]).batches:
        out += [(r.offset, r.value) for r in decode_batch(topic, partition, batch)]
    return out


def fresh_engine(engine: Engine) -> Engine:
    """A second engine on the same tables, with an empty cache (another Lambda, say)."""
    return Engine(engine._ddb, engine.blobs._s3, engine.names)


def test_offsets_are_dense_from_zero(orders: Engine) -> None:
    results = [orders.append("orders", 0, make_batch(values(f"b{i}", 3))) for i in range(4)]
    assert [(r.base_offset, r.last_offset) for r in results] == [(0, 2), (3, 5), (6, 8), (9, 11)]
    assert [o for o, _ in read_all(orders)] == list(range(12))
    assert orders.watermarks("orders", 0) == (0, 12)
    assert orders.watermarks("orders", 1) == (0, 0)


def test_stored_bytes_carry_the_base_offset_and_valid_crc(orders: Engine) -> None:
    orders.append("orders", 0, make_batch([b"a"]))
    orders.append("orders", 0, make_batch([b"b", b"c"], codec="zstd"))
    batches = orders.fetch("orders", 0, 0).batches
    assert [decode_batch("orders", 0, b)[0].offset for b in batches] == [0, 1]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_retry_that_says_so_gets_its_original_offsets(orders: Engine) -> None:
    batch = make_batch(values("v", 3), pid=5, seq=0)
    sent = now_ms()
    first = orders.append("orders", 0, batch)
    orders.append("orders", 0, make_batch(values("rival", 2)))
    # another engine (no cache, no memory: another Lambda) gets the retry after a lost reply
    retry = fresh_engine(orders).append("orders", 0, batch, since_ms=sent)
    assert (retry.base_offset, retry.last_offset, retry.duplicate) == (0, 2, True)
    assert not first.duplicate
    assert orders.watermarks("orders", 0) == (0, 5)


def test_retries_find_their_batch_among_many_of_the_same_producer(orders: Engine) -> None:
    sent = now_ms()
    batches = [make_batch(values(f"b{i}", 2), pid=5, seq=2 * i) for i in range(7)]
    for b in batches:
        orders.append("orders", 0, b)
    for i in (0, 3, 6):
        again = fresh_engine(orders).append("orders", 0, batches[i], since_ms=sent)
        assert (again.base_offset, again.duplicate) == (2 * i, True)
    assert orders.watermarks("orders", 0) == (0, 14)


def test_the_lookback_stops_at_the_first_attempt_time(orders: Engine) -> None:
    """A retry whose first attempt came after the batch's older copy: a new batch (the
    window starts at the first attempt minus the clock margin)."""
    batch = make_batch([b"a"], pid=5, seq=0)
    orders.append("orders", 0, batch)
    later = now_ms() + 3_600_000
    again = fresh_engine(orders).append("orders", 0, batch, since_ms=later)
    assert (again.base_offset, again.duplicate) == (1, False)


def test_idempotent_batches_are_written_per_partition(orders: Engine) -> None:
    sent = now_ms()
    batch = make_batch([b"a"], pid=5, seq=0)
    orders.append("orders", 0, batch)
    assert orders.append("orders", 1, batch, since_ms=sent).duplicate is False
    assert orders.watermarks("orders", 1) == (0, 1)


def test_expected_offset_append(orders: Engine) -> None:
    assert orders.append("orders", 0, make_batch([b"a"]), expected_offset=0).base_offset == 0
    with pytest.raises(OffsetMismatch) as info:
        orders.append("orders", 0, make_batch([b"b"]), expected_offset=0)
    assert (info.value.expected, info.value.actual) == (0, 1)
    assert "next offset is 1" in str(info.value)
    assert orders.append("orders", 0, make_batch([b"b"]), expected_offset=1).base_offset == 1


def test_batch_over_max_message_bytes_writes_nothing(engine: Engine) -> None:
    engine.create_topic("small", 1, {"max.message.bytes": 2048})
    with pytest.raises(RecordTooLarge, match=r"max\.message\.bytes=2048"):
        engine.append("small", 0, make_batch([b"x" * 3000]))
    assert engine.watermarks("small", 0) == (0, 0)


def test_corrupt_batch_writes_nothing(orders: Engine) -> None:
    data = bytearray(make_batch([b"a"]))
    data[-1] ^= 1
    with pytest.raises(InvalidRecord):
        orders.append("orders", 0, bytes(data))
    assert orders.watermarks("orders", 0) == (0, 0)


def test_large_batches_go_to_s3_and_read_back_identically(engine: Engine) -> None:
    engine.create_topic("big", 1, {"inline.max.bytes": 1024})
    small = make_batch([b"s" * 10])
    large = make_batch([b"L" * 5000, b"M" * 5000], pid=3, seq=0)
    sent = now_ms()
    engine.append("big", 0, small)
    engine.append("big", 0, large)
    engine.append("big", 0, large, since_ms=sent)  # a retry: no second write or blob
    items = engine._ddb.query(
        TableName=engine.names.log_table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": engine.topics.get("big").ref(0).pk}},
    )["Items"]
    batch_items = [i for i in items if i["sk"]["S"].startswith("b/")]
    assert [schema.A_DATA in i for i in batch_items] == [True, False]
    keys = engine.blobs._s3.list_objects_v2(Bucket=engine.names.bucket)["Contents"]
    assert len(keys) == 1
    assert read_all(engine, "big") == [(0, b"s" * 10), (1, b"L" * 5000), (2, b"M" * 5000)]
    fetched = engine.fetch("big", 0, 1).batches[0]
    assert fetched[8:] == large[8:]  # byte-identical apart from the patched base offset


def test_log_append_time(engine: Engine) -> None:
    engine.create_topic("lat", 1, {"message.timestamp.type": "LogAppendTime"})
    result = engine.append("lat", 0, make_batch([b"a", b"b"], ts=5))
    assert result.log_append_time > 1_600_000_000_000
    records = decode_batch("lat", 0, engine.fetch("lat", 0, 0).batches[0])
    assert {(r.timestamp, r.timestamp_type) for r in records} == {
        (result.log_append_time, TimestampType.LOG_APPEND_TIME)}


def test_fetch_bounds(orders: Engine) -> None:
    for i in range(10):
        orders.append("orders", 0, make_batch(values(f"b{i}", 10)))
    assert len(orders.fetch("orders", 0, 0, max_records=25).batches) == 3
    assert len(orders.fetch("orders", 0, 0, max_bytes=1).batches) == 1
    mid = orders.fetch("orders", 0, 55, max_records=1).batches
    assert decode_batch("orders", 0, mid[0])[0].offset == 50  # the batch holding 55
    assert orders.fetch("orders", 0, 100).batches == []


@pytest.mark.parametrize("offset", [-1, 11, 2**63, True])
def test_fetch_out_of_range(orders: Engine, offset: int) -> None:
    orders.append("orders", 0, make_batch(values("v", 10)))
    with pytest.raises(OffsetOutOfRange, match=r"valid offsets: 0\.\.10"):
        orders.fetch("orders", 0, offset)


def test_offsets_for_times(orders: Engine) -> None:
    orders.append("orders", 0, make_batch(values("a", 5), ts=100))   # 100..104
    orders.append("orders", 0, make_batch(values("b", 5), ts=50))    # out-of-order times
    orders.append("orders", 0, make_batch(values("c", 5), ts=200))   # 200..204
    assert orders.offset_for_time("orders", 0, 0) == 0
    assert orders.offset_for_time("orders", 0, 102) == 2
    assert orders.offset_for_time("orders", 0, 105) == 10
    assert orders.offset_for_time("orders", 0, 203) == 13
    assert orders.offset_for_time("orders", 0, 205) is None
    assert orders.offset_for_time("orders", 1, 0) is None


def test_appends_to_a_deleted_topic_fail_cleanly(orders: Engine) -> None:
    orders.append("orders", 0, make_batch([b"a"]))
    other = fresh_engine(orders)
    other.topics.get("orders")  # warm the other engine's cache
    orders.delete_topic("orders")
    orders.create_topic("orders", 1)
    result = other.append("orders", 0, make_batch([b"b"]))  # stale cache: old topic id
    assert result.base_offset == 0  # landed in the new topic, not the deleted one
    assert read_all(orders) == [(0, b"b")]


def test_a_stale_cache_never_refuses_a_valid_batch(orders: Engine) -> None:
    """Consecutive batches of one producer may reach different engines (Lambdas)."""
    a, b = orders, fresh_engine(orders)
    a.append("orders", 0, make_batch([b"0"], pid=5, seq=0))
    b.append("orders", 0, make_batch([b"1"], pid=5, seq=1))
    assert a.append("orders", 0, make_batch([b"2"], pid=5, seq=2)).base_offset == 2
    b.append("orders", 0, make_batch([b"3"]))
    assert a.append("orders", 0, make_batch([b"4"]), expected_offset=4).base_offset == 4
    with pytest.raises(OffsetMismatch) as info:
        b.append("orders", 0, make_batch([b"5"]), expected_offset=4)
    assert info.value.actual == 5
    assert [v for _, v in read_all(orders)] == [b"0", b"1", b"2", b"3", b"4"]


def test_a_partition_without_its_item_is_a_retriable_error_not_endless_recursion(
        orders: Engine) -> None:
    """A topic item whose partition items are not (yet, or any more) there: the append
    reads fresh metadata once, then says so (it recursed without bound)."""
    meta = orders.topics.get("orders")
    orders._ddb.delete_item(TableName=orders.names.log_table, Key=meta.ref(1).state_key)
    with pytest.raises(AppendConflict, match=r"[Pp]artition 1"):
        fresh_engine(orders).append("orders", 1, make_batch(values("x", 1)))
