"""Topic administration and offset queries."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Self

from .records import TopicDescription, TopicPartition
from .transport import Transport, connect


class Admin:
    """Creates, describes, grows and deletes topics; answers offset queries.

    Example:
        >>> admin = Admin("direct+http://127.0.0.1:4566")                  # doctest: +SKIP
        >>> admin.create_topic("orders", partitions=6, config={"retention.ms": 86400000})
        >>> admin.watermarks("orders", 0)                                  # doctest: +SKIP
        (0, 0)
    """

    def __init__(self, endpoint: str | None = None, *, transport: Transport | None = None):
        self._transport = transport or connect(endpoint)

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        """Create a topic; config keys are Kafka's (retention.ms, max.message.bytes, ...)."""
        return self._transport.create_topic(name, partitions, config)

    def list_topics(self) -> list[str]:
        return self._transport.list_topics()

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions, config and each partition's (low, high) watermarks."""
        return self._transport.describe_topic(name)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all of its records."""
        self._transport.delete_topic(name)

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow ``name`` to ``total`` partitions (keys may then map elsewhere, as in Kafka)."""
        return self._transport.create_partitions(name, total)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, high watermark) of one partition."""
        return self._transport.watermarks(topic, partition)

    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, int | None]:
        """For each partition, the first offset whose timestamp is >= the given ms (or None)."""
        return {tp: self._transport.offset_for_time(tp.topic, tp.partition, ts)
                for tp, ts in timestamps.items()}

    def close(self) -> None:
        """Nothing to release; present for symmetry with Producer and Consumer."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
