"""Idempotent producers through the gateway, request by request: duplicates answered with
their original offsets, gaps and stale epochs refused as a broker refuses them, on one
connection and on a fresh one (another gateway's view: the log is the producer state).

The batches are built by hand (a client never sends a gap on purpose), sent on raw
connections (:mod:`tests.kafka.raw`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamlet.engine import Engine
from streamlet.kafka import KafkaGateway
from streamlet.local import LocalPlatform
from tests.batches import make_batch, values
from tests.kafka.raw import Connection

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
REQUEST_TIMED_OUT = 7


@pytest.fixture
def topic(platform: LocalPlatform, live_platform: LocalPlatform) -> str:
    name = f"idem-{uuid.uuid4().hex[:8]}"
    platform.engine().create_topic(name, 1)
    return name


@pytest.fixture
def connect(gateway: KafkaGateway) -> Iterator[type[Connection]]:
    opened: list[Connection] = []

    class Opened(Connection):
        def __init__(self) -> None:
            super().__init__(gateway)
            opened.append(self)

    yield Opened  # type: ignore[misc]
    for conn in opened:
        conn.close()


def _batch(pid: int, seq: int, n: int = 2, epoch: int = 0) -> bytes:
    return make_batch(values(f"{epoch}-{seq}", n), pid=pid, epoch=epoch, seq=seq)


def _pid() -> int:
    return 1_000_000 + uuid.uuid4().int % 1_000_000


@pytest.mark.parametrize("fresh", [False, True], ids=["same-connection", "new-connection"])
def test_duplicates_gaps_and_stale_epochs(platform: LocalPlatform, topic: str,
                                          connect: type[Connection], fresh: bool) -> None:
    """The same answers whether the connection remembers the producer's batches or the
    log is searched for them (a reconnect, or another gateway)."""
    first, pid = connect(), _pid()
    assert first.produce(topic, _batch(pid, 0)) == (0, 0)
    assert first.produce(topic, _batch(pid, 2)) == (0, 2)
    judge = connect() if fresh else first
    assert judge.produce(topic, _batch(pid, 0)) == (0, 0)  # a duplicate: its offsets
    assert judge.produce(topic, _batch(pid, 2)) == (0, 2)
    assert judge.produce(topic, _batch(pid, 6))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER  # gap
    assert judge.produce(topic, _batch(pid, 3))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert judge.produce(topic, _batch(pid, 4)) == (0, 4)  # the next one
    assert judge.produce(topic, _batch(pid, 6, epoch=1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert judge.produce(topic, _batch(pid, 0, epoch=1)) == (0, 6)  # a new epoch at 0
    stale = connect() if fresh else judge
    assert stale.produce(topic, _batch(pid, 6))[0] == INVALID_PRODUCER_EPOCH
    assert platform.engine().watermarks(topic, 0) == (0, 8)  # nothing else written


def test_a_reconnected_producer_continues_its_sequence(
        platform: LocalPlatform, topic: str, connect: type[Connection]) -> None:
    """A producer whose connection broke goes on through a new one (maybe to another
    gateway), between other producers' batches: the new connection finds its newest batch
    in the log, takes the next sequence and answers a resent one with its offsets."""
    a, pid, other = connect(), _pid(), _pid()
    assert a.produce(topic, _batch(pid, 0)) == (0, 0)
    assert a.produce(topic, _batch(other, 0)) == (0, 2)
    assert a.produce(topic, _batch(pid, 2)) == (0, 4)
    a.close()
    b = connect()
    assert b.produce(topic, _batch(other, 2)) == (0, 6)
    assert b.produce(topic, _batch(pid, 2)) == (0, 4)  # resent: it had landed
    assert b.produce(topic, _batch(pid, 4)) == (0, 8)
    assert b.produce(topic, _batch(other, 8))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert platform.engine().watermarks(topic, 0) == (0, 10)


class _SlowEngine:
    """The platform's engine, its appends starting 1.2 s late (a queue, a slow store)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def append(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.2)
        return self._engine.append(*args, **kwargs)


def test_no_write_starts_after_half_the_request_timeout(
        platform: LocalPlatform, topic: str, live_platform: LocalPlatform) -> None:
    """A client resends a batch only after its request timed out: an attempt still
    waiting by then must not write, or the resend (through another connection) and it
    could both land."""
    gateway = KafkaGateway(_SlowEngine(platform.engine()), port=0).start_background()  # type: ignore[arg-type]
    conn = Connection(gateway)
    try:
        pid = _pid()
        assert conn.produce(topic, _batch(pid, 0), timeout_ms=2_000)[0] == REQUEST_TIMED_OUT
        assert platform.engine().watermarks(topic, 0) == (0, 0)  # nothing written
        assert conn.produce(topic, _batch(pid, 0), timeout_ms=30_000) == (0, 0)
    finally:
        conn.close()
        gateway.stop()
