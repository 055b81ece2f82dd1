"""AIOAdmin: the Admin client's methods as coroutines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from ..admin import Admin, GroupPartition
from ..errors import StreamletError
from ..records import ArchiveReport, RetentionReport, TopicDescription, TopicPartition
from ._bridge import Lane

T = TypeVar("T")


class AIOAdmin:
    """Topic administration, offset queries and consumer groups, off the event loop.

    Each method is :class:`~streamlet.Admin`'s, as a coroutine; the calls run in order on
    a worker thread of the client's own.

    Example:
        >>> async with AIOAdmin("memory://") as admin:                      # doctest: +SKIP
        ...     await admin.create_topic("orders", partitions=3)
        ...     await admin.watermarks("orders", 0)
        (0, 0)
    """

    def __init__(self, endpoint: str | None = None, **options: Any) -> None:
        self._endpoint = endpoint
        self._options = options
        self._admin: Admin | None = None
        self._lane = Lane("admin")
        self._closed = False

    async def start(self) -> None:
        """Connect (off the loop). Idempotent."""
        if self._closed:
            raise StreamletError("The admin client is closed; create a new one.")
        if self._admin is None:
            self._admin = await self._lane.run(Admin, self._endpoint, **self._options)

    async def close(self) -> None:
        """Close the connections (off the loop). Idempotent."""
        if self._closed:
            return
        self._closed = True
        admin, self._admin = self._admin, None
        try:
            if admin is not None:
                await self._lane.run(admin.close)
        finally:
            self._lane.close()

    stop = close

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ---- topics -----------------------------------------------------------------------------

    async def create_topic(self, name: str, partitions: int = 1,
                           config: Mapping[str, object] | None = None) -> TopicDescription:
        return await self._run(lambda a: a.create_topic(name, partitions, config))

    async def list_topics(self) -> list[str]:
        return await self._run(lambda a: a.list_topics())

    async def describe_topic(self, name: str) -> TopicDescription:
        return await self._run(lambda a: a.describe_topic(name))

    async def delete_topic(self, name: str) -> None:
        await self._run(lambda a: a.delete_topic(name))

    async def create_partitions(self, name: str, total: int) -> TopicDescription:
        return await self._run(lambda a: a.create_partitions(name, total))

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return await self._run(lambda a: a.watermarks(topic, partition))

    async def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                                ) -> dict[TopicPartition, int | None]:
        return await self._run(lambda a: a.offsets_for_times(timestamps))

    # ---- tiered storage and retention -------------------------------------------------------

    async def delete_records(self, offsets: Mapping[TopicPartition, int]
                             ) -> dict[TopicPartition, int]:
        return await self._run(lambda a: a.delete_records(offsets))

    async def archive(self, topic: str | None = None, *, force: bool = False
                      ) -> list[ArchiveReport]:
        return await self._run(lambda a: a.archive(topic, force=force))

    async def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]:
        return await self._run(lambda a: a.enforce_retention(topic))

    # ---- consumer groups --------------------------------------------------------------------

    async def list_groups(self) -> list[str]:
        return await self._run(lambda a: a.list_groups())

    async def describe_group(self, group: str) -> list[GroupPartition]:
        return await self._run(lambda a: a.describe_group(group))

    async def live_members(self, group: str) -> list[str]:
        return await self._run(lambda a: a.live_members(group))

    async def reset_offsets(self, group: str, *, topic: str | None = None,
                            partition: int | None = None, to_earliest: bool = False,
                            to_latest: bool = False, to_offset: int | None = None,
                            to_datetime_ms: int | None = None, shift_by: int | None = None,
                            execute: bool = False
                            ) -> dict[TopicPartition, tuple[int | None, int]]:
        return await self._run(lambda a: a.reset_offsets(
            group, topic=topic, partition=partition, to_earliest=to_earliest,
            to_latest=to_latest, to_offset=to_offset, to_datetime_ms=to_datetime_ms,
            shift_by=shift_by, execute=execute))

    async def delete_group(self, group: str) -> None:
        await self._run(lambda a: a.delete_group(group))

    async def _run(self, call: Callable[[Admin], T]) -> T:
        if self._admin is None:
            state = "closed" if self._closed else "not started: await start() first"
            raise StreamletError(f"The admin client is {state}.")
        return await self._lane.run(call, self._admin)
