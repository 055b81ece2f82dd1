"""The gateway process: an asyncio server speaking the Kafka protocol over a Streamlet engine.

Stateless: every partition's data, every group's state and every committed offset lives
in DynamoDB and S3 (the engine), so any number of gateways behind one load balancer
serve any client; each advertises the address clients should dial (the load balancer's)
as the leader of every partition and the coordinator of every group.

One connection is served in order, one request at a time, as a broker does (responses
come back in request order, and an idempotent producer's batches to a partition are
appended in the order it sent them). The engine is synchronous (boto3): its calls run
on a thread pool, so one slow DynamoDB call holds up only its own connection.

Example:
    >>> gateway = KafkaGateway(engine, port=9092).start_background()   # doctest: +SKIP
    >>> gateway.bootstrap                                              # doctest: +SKIP
    '127.0.0.1:9092'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..clock import SYSTEM, Clock
from . import codes
from .auth import Authenticator, Session, open_access
from .protocol import (
    ApiKey,
    Request,
    decode_request,
    encode_response,
    error_response,
    parse_header,
    servable,
)

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["KafkaGateway"]

log = logging.getLogger("streamlet.kafka")

MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""Kafka's socket.request.max.bytes: a larger frame closes the connection."""
NODE_ID = 0

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[Session, Request], Awaitable[Any]]


class KafkaGateway:
    """Serve the Kafka protocol for ``engine`` on ``host:port``."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 9092,
                 advertised_host: str | None = None, advertised_port: int | None = None,
                 authenticator: Authenticator | None = None, workers: int = 32,
                 clock: Clock = SYSTEM, idempotence_window_ms: int = 120_000) -> None:
        from .admin import AdminApis
        from .coordinator import Coordinator
        from .data import DataApis
        from .group_offsets import GroupOffsets

        self.engine = engine
        self.host, self.port = host, port
        self._advertised = (advertised_host, advertised_port)
        self.auth = authenticator or open_access()
        self.clock = clock
        self.node_id = NODE_ID
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="streamlet-kafka")
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.data = DataApis(self, idempotence_window_ms)
        self.groups = Coordinator(self)
        self.admin = AdminApis(self)
        self._handlers: dict[int, Handler] = {
            ApiKey.ApiVersions: self._api_versions,
            **self.data.handlers(), **self.data.txn.handlers(), **self.groups.handlers(),
            **GroupOffsets(self.groups).handlers(), **self.admin.handlers(),
        }

    # ---- addresses ----------------------------------------------------------------------

    @property
    def advertised(self) -> tuple[str, int]:
        """(host, port) that Metadata and FindCoordinator name: where clients dial."""
        host, port = self._advertised
        return host or self.host, port or self.port

    @property
    def bootstrap(self) -> str:
        host, port = self.advertised
        return f"{host}:{port}"

    # ---- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (port 0 picks a free one: :attr:`port` tells which afterwards)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  limit=1 << 20)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("Kafka gateway listening on %s:%d", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            connections = list(self._connections)
            for task in connections:
                task.cancel()
            with contextlib.suppress(Exception):  # each closes its socket as it ends
                await asyncio.wait_for(
                    asyncio.gather(*connections, return_exceptions=True), 2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def start_background(self) -> KafkaGateway:
        """Run the server on its own event loop in a daemon thread (local platform,
        tests); returns once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # port taken: report it to the caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.aclose())
            loop.close()

        self._thread = threading.Thread(target=run, name="streamlet-kafka-gateway",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a gateway started with :meth:`start_background`."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous (engine) call on the gateway's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # ---- connections --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        session = self.auth.new_session(str(peer[0]) if peer else "?")
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                if not 8 <= size <= MAX_REQUEST_BYTES:
                    log.warning("closing %s: request frame of %d bytes", peer, size)
                    break
                frame = await reader.readexactly(size)
                reply = await self._answer(session, frame)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
                if session.closing:  # after a refused authentication or a failed acks=0
                    # produce, as a broker does
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, session: Session, frame: bytes) -> bytes | None:
        key, version, correlation = parse_header(frame)
        handler = self._handlers.get(key)
        if handler is None or not servable(key, version):
            log.info("unsupported request: api %d v%d", key, version)
            return error_response(key, version, correlation)
        try:
            request = decode_request(frame)
        except Exception:  # a malformed request: Kafka closes such connections too
            log.warning("undecodable request api %d v%d from %s", key, version, session.peer)
            session.closing = True
            return None
        refusal = self.auth.gate(session, key)
        if refusal is not None:
            return error_response(key, version, correlation, refusal)
        try:
            body = await handler(session, request)
        except Exception:
            log.exception("request api %d v%d failed", key, version)
            return error_response(key, version, correlation, codes.UNKNOWN_SERVER_ERROR)
        if body is None:  # acks=0 produce: no response
            return None
        return encode_response(key, version, correlation, body)

    async def _api_versions(self, session: Session, request: Request) -> Any:
        from .protocol import api_versions_body

        return api_versions_body()
