"""Streamlet's clients for asyncio, in aiokafka's shape.

``AIOProducer``, ``AIOConsumer`` and ``AIOAdmin`` wrap the sync clients: each runs their
blocking calls on worker threads of its own and hands results back to the event loop
with ``loop.call_soon_threadsafe``, so the loop never waits on I/O, on either transport.

Example:
    >>> import asyncio                                                     # doctest: +SKIP
    >>> from streamlet.aio import AIOConsumer, AIOProducer
    >>> async def main() -> None:
    ...     async with AIOProducer("memory://") as producer:
    ...         await producer.send_and_wait("orders", b"hello", key=b"k")
    ...     async with AIOConsumer("orders", endpoint="memory://",
    ...                            auto_offset_reset="earliest") as consumer:
    ...         batch = await consumer.getmany(timeout_ms=1000)
    ...         for tp, records in batch.items():
    ...             print(tp, [r.value for r in records])
    >>> asyncio.run(main())
"""

from .admin import AIOAdmin
from .consumer import AIOConsumer
from .producer import AIOProducer

__all__ = ["AIOAdmin", "AIOConsumer", "AIOProducer"]
