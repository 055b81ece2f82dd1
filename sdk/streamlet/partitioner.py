"""Choosing a partition for a record, the way Kafka's Java client does.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions`` — the Java default
partitioner, so a key lands on the same partition number as with a Java client.
Keyless records: sticky (KIP-480): one random partition per topic until its batch
is sent, then another.
"""

from __future__ import annotations

import random
import struct
import threading
from typing import Protocol

_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as an unsigned 32-bit int (Java's ``Utils.murmur2``).

    The same values as aiokafka's and kafka-python's pure-Python versions, about twice
    as fast: the 4-byte words are unpacked at once and the masking is minimal.

    Example:
        >>> murmur2(b"21") - (1 << 32)      # Java: -973932308
        -973932308
    """
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    if words:
        unpack = _WORDS.get(words)
        if unpack is None:
            unpack = _WORDS.setdefault(words, struct.Struct(f"<{words}I"))
        for word in unpack.unpack_from(data):
            k = (word * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        i = length - tail
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def murmur2_partition(key: bytes, num_partitions: int) -> int:
    """Kafka's Java default partition for a keyed record.

    Example:
        >>> murmur2_partition(b"foobar", 12)
        6
    """
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class Partitioner(Protocol):
    """Pick a partition; ``on_new_batch`` tells a sticky partitioner to move on."""

    def partition(self, topic: str, key: bytes | None, num_partitions: int) -> int: ...

    def on_new_batch(self, topic: str, num_partitions: int, previous: int) -> None: ...


class DefaultPartitioner:
    """murmur2 for keys, sticky random choice for keyless records."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._sticky: dict[str, int] = {}
        self._lock = threading.Lock()

    def partition(self, topic: str, key: bytes | None, num_partitions: int) -> int:
        if key is not None:
            return murmur2_partition(key, num_partitions)
        with self._lock:
            current = self._sticky.get(topic)
            if current is None or current >= num_partitions:
                current = self._rng.randrange(num_partitions)
                self._sticky[topic] = current
            return current

    def on_new_batch(self, topic: str, num_partitions: int, previous: int) -> None:
        with self._lock:
            if self._sticky.get(topic) != previous or num_partitions < 2:
                return
            choice = self._rng.randrange(num_partitions - 1)
            self._sticky[topic] = choice if choice < previous else choice + 1
