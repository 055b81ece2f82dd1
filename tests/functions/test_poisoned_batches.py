"""No request can poison a partition (issue: hardening, point 1 and 7): every produce
route and the SDK's direct append refuse a malformed batch with a 4xx, write nothing, and
leave the partition readable; reads of what was stored are bounded (point 2)."""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlet.codec import ATTRIBUTES_OFFSET
from streamlet.engine import Engine
from streamlet.errors import InvalidRecord, RecordTooLarge
from tests.batches import make_batch
from tests.functions.conftest import call
from tests.unit.test_validation import recrc, relabelled, with_codec, zero_bombs

NOW_MS = 1_900_000_000_000
ROUTE = "/v1/topics/orders/partitions/0/batches"


def good(values: list[bytes] | None = None) -> bytes:
    """A batch of three records, timestamped now (the window is checked)."""
    return make_batch(values or [b"a", b"b", b"c"], ts=int(time.time() * 1000))


def attacks() -> dict[str, bytes]:
    """The findings of the probe, each one batch."""
    base = good()
    out = {
        "count relabelled to 1,000": relabelled(base, 1000),
        "count relabelled to 2^31-1": relabelled(base, 2**31 - 1),
        "unknown codec 7": with_codec(base, 7),
        "zstd flag on raw bytes": with_codec(base, 4),
        "timestamp 9999-12-31": make_batch([b"x"], ts=253_402_214_400_000),
        "timestamp int64 max": make_batch([b"x"], ts=2**63 - 2),
    }
    out["zstd bomb of 64 MiB"] = _with_records(base, 4, zero_bombs()["zstd"])
    return out


def _with_records(base: bytes, codec: int, section: bytes) -> bytes:
    """``base``'s header over another records section (length and codec patched)."""
    header = bytearray(base[:61])
    struct.pack_into(">i", header, 8, 61 - 12 + len(section))
    (attrs,) = struct.unpack_from(">h", header, ATTRIBUTES_OFFSET)
    struct.pack_into(">h", header, ATTRIBUTES_OFFSET, attrs & ~0x07 | codec)
    return recrc(bytes(header) + section)


@pytest.fixture
def orders(aws: Engine) -> Engine:
    aws.create_topic("orders", 1)
    aws.append("orders", 0, good([b"before"]))
    return aws


def readable(engine: Engine) -> list[bytes]:
    from streamlet.codec import decode_batch

    batches = engine.fetch("orders", 0, 0).batches
    return [r.value or b"" for b in batches for r in decode_batch("orders", 0, b)]


@pytest.mark.parametrize("name", list(attacks()))
def test_the_native_route_refuses_each_attack_writing_nothing(orders: Engine, name: str
                                                              ) -> None:
    reply = call("POST", ROUTE, attacks()[name])
    assert 400 <= reply.status < 500, (name, reply.status, reply.json())
    assert reply.json()["error_code"] in (40002, 41301) and reply.json()["message"]
    assert orders.watermarks("orders", 0) == (0, 1)
    assert readable(orders) == [b"before"]


@pytest.mark.parametrize("name", list(attacks()))
def test_the_direct_append_refuses_each_attack_writing_nothing(orders: Engine, name: str
                                                               ) -> None:
    with pytest.raises((InvalidRecord, RecordTooLarge)) as caught:
        orders.append("orders", 0, attacks()[name])
    assert "'orders'" in caught.value.message
    assert orders.watermarks("orders", 0) == (0, 1)


MUTATIONS = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1,
                     max_size=4)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=MUTATIONS, fix_crc=st.booleans())
def test_mutated_batches_are_refused_or_stored_readable(orders: Engine,
                                                        mutations: list[tuple[int, int]],
                                                        fix_crc: bool) -> None:
    """Byte-wise mutations of a valid batch, CRC recomputed or not, through the native
    route: a 4xx and nothing written, or accepted and readable like any batch."""
    buf = bytearray(good([b"x" * 30, b"y" * 30]))
    for position, value in mutations:
        buf[position % len(buf)] = value
    data = recrc(bytes(buf)) if fix_crc else bytes(buf)
    before = orders.watermarks("orders", 0)
    reply = call("POST", ROUTE, data)
    assert reply.status < 500, reply.json()
    if reply.status >= 400:
        assert orders.watermarks("orders", 0) == before
    readable(orders)  # never raises: the partition stays readable


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_v2_reads_are_bounded_by_the_request(aws: Engine) -> None:
    """A stored batch that expands to 4 MiB (accepted: within the topic's limit once
    decompressed) is read in memory bounded by the request's max_bytes, not its size."""
    aws.create_topic("orders", 1, {"max.message.bytes": 4 * 1024 * 1024})
    aws.append("orders", 0, make_batch([bytes(1024 * 1024 - 100) for _ in range(4)],
                                       codec="zstd", ts=int(time.time() * 1000)))
    for name in ("small", "large"):
        call("POST", "/consumers/g", {"name": name, "format": "binary",
                                      "auto.offset.reset": "earliest"})
        call("POST", f"/consumers/g/instances/{name}/assignments",
             {"partitions": [{"topic": "orders", "partition": 0}]})
    rows: dict[str, list[object]] = {}

    def read(name: str, max_bytes: int) -> None:
        rows[name] = call("GET", f"/consumers/g/instances/{name}/records",
                          query={"timeout": 0, "max_bytes": max_bytes}).json()

    small = _peak(lambda: read("small", 1024))
    large = _peak(lambda: read("large", 4 * 1024 * 1024))
    assert len(rows["small"]) == 1 and len(rows["large"]) == 3  # the response's 4 MB cap
    assert small * 2 < large, (small, large)
    assert call("GET", "/v1/topics/orders/partitions/0/offsets",
                query={"timestamp": 0}).json()["offset"] == 0
