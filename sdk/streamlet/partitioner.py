"""Choosing a partition for a record, the way Kafka's Java client does.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions`` — the Java default
partitioner, so a key lands on the same partition number as with a Java client.
Keyless records: sticky (KIP-480): one random partition per topic until its batch
is sent, then another.
"""

from __future__ import annotations

import random
import threading
from typing import Protocol

from aiokafka.partitioner import murmur2


def murmur2_partition(key: bytes, num_partitions: int) -> int:
    """Kafka's Java default partition for a keyed record.

    Example:
        >>> murmur2_partition(b"foobar", 12)
        6
    """
    return (int(murmur2(key)) & 0x7FFFFFFF) % num_partitions


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
