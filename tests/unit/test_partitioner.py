"""The partitioner must place keys exactly where Kafka's Java client does."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2

from streamlet.partitioner import DefaultPartitioner, murmur2_partition
from streamlet.partitioner import murmur2 as streamlet_murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed Java ints)
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_murmur2_matches_java(key: bytes, expected: int) -> None:
    h = murmur2(key)
    assert (h - (1 << 32) if h >= 1 << 31 else h) == expected


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_keyed_partition_is_javas_to_positive_mod(key: bytes, expected: int) -> None:
    for n in (1, 3, 7, 12, 100):
        assert murmur2_partition(key, n) == (expected & 0x7FFFFFFF) % n


def test_same_key_same_partition() -> None:
    p = DefaultPartitioner()
    assert {p.partition("t", b"user-1", 8) for _ in range(20)} == {murmur2_partition(b"user-1", 8)}


def test_keyless_records_stick_until_the_batch_changes() -> None:
    p = DefaultPartitioner(random.Random(1))
    first = p.partition("t", None, 6)
    assert {p.partition("t", None, 6) for _ in range(10)} == {first}
    p.on_new_batch("t", 6, first)
    second = p.partition("t", None, 6)
    assert second != first
    assert p.partition("t", None, 6) == second


def test_keyless_records_spread_over_partitions() -> None:
    p = DefaultPartitioner(random.Random(2))
    seen = set()
    for _ in range(200):
        part = p.partition("t", None, 4)
        seen.add(part)
        p.on_new_batch("t", 4, part)
    assert seen == {0, 1, 2, 3}


def test_streamlets_murmur2_is_aiokafkas() -> None:
    """The faster murmur2 returns aiokafka's (and so Java's) values for any bytes."""
    rng = random.Random(7)
    for _ in range(5000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        assert streamlet_murmur2(data) == murmur2(data) & 0xFFFFFFFF, data
