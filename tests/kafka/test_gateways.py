"""What no single gateway decides: acks=0 producers (records written, no reply sent, the
connection kept), and several gateways over one platform serving one consumer group
(one owner per partition, commits seen through any gateway, a member's or a gateway's
departure taken over with no record lost) and one producer (offsets dense, no record
twice when its gateway dies between an append and its reply)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.protocol.consumer import JoinGroupRequest
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from streamlet import Consumer
from streamlet.engine import Engine
from streamlet.kafka import KafkaGateway
from streamlet.kafka.auth import Session
from streamlet.kafka.protocol import ApiKey, decode_request, parse_header
from streamlet.local import LocalPlatform
from streamlet.partitioner import murmur2_partition
from streamlet.records import Record
from tests.kafka.raw import read_frame

from .conftest import eventually

QUIET = {"log_level": 3}
SESSION = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
"""The group-of-three rebalance test's settings (test_kafka_python.py)."""


# ---- gateways ---------------------------------------------------------------------------

class Served:
    """What one gateway served: per request its API key, a Produce's acks, whether it was
    answered, and the connection (the auth session is one per connection)."""

    def __init__(self, gateway: KafkaGateway) -> None:
        self.gateway = gateway
        self.requests: list[tuple[int, int | None, bool, Session]] = []
        answer = gateway._answer

        async def recording(session: Session, frame: bytes) -> bytes | None:
            reply = await answer(session, frame)
            key = parse_header(frame)[0]
            acks = decode_request(frame).body.acks if key == ApiKey.Produce else None
            self.requests.append((key, acks, reply is not None, session))
            return reply

        gateway._answer = recording  # type: ignore[method-assign]

    def apis(self) -> set[int]:
        return {key for key, _, _, _ in self.requests}

    def produces(self) -> list[tuple[int | None, bool, Session]]:
        return [(acks, answered, session) for key, acks, answered, session in self.requests
                if key == ApiKey.Produce]


@pytest.fixture
def start(live_platform: LocalPlatform) -> Iterator[Callable[..., KafkaGateway]]:
    """Start gateways over the session's platform (stopped after the test)."""
    started: list[KafkaGateway] = []

    def start_one(port: int = 0) -> KafkaGateway:
        gateway = KafkaGateway(live_platform.engine(), port=port).start_background()
        started.append(gateway)
        return gateway

    yield start_one
    for gateway in started:
        gateway.stop()


# ---- reading back -------------------------------------------------------------------------

def _highs(engine: Engine, topic: str, partitions: int) -> dict[int, int]:
    return {p: engine.watermarks(topic, p)[1] for p in range(partitions)}


def _read_back(platform: LocalPlatform, topic: str, partitions: int
               ) -> dict[int, list[Record]]:
    """Every record of ``topic`` by partition, read with Streamlet's SDK up to the high
    watermarks (then a last poll, so a record beyond them would show up too)."""
    highs = _highs(platform.engine(), topic, partitions)
    got: dict[int, list[Record]] = {p: [] for p in range(partitions)}
    with Consumer(topic, endpoint=platform.endpoint, auto_offset_reset="earliest") as sdk:

        def complete() -> bool:
            for record in sdk.poll(timeout=0.5):
                got[record.partition].append(record)
            return all(len(got[p]) >= highs[p] for p in got)

        eventually(complete, what=lambda: f"{highs} records, got "
                   f"{ {p: len(r) for p, r in got.items()} }")
        for record in sdk.poll(timeout=0.3):
            got[record.partition].append(record)
    return got


def _sent_by_partition(records: list[tuple[bytes, bytes]], partitions: int
                       ) -> dict[int, list[bytes]]:
    """The values sent, per the partition their key hashes to (murmur2), in send order."""
    out: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for key, value in records:
        out[murmur2_partition(key, partitions)].append(value)
    return out


# ---- acks=0 -------------------------------------------------------------------------------

ACKS0_RECORDS = 150
ACKS0_PARTITIONS = 3


def _produce_confluent_acks0(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]
                             ) -> dict[str, Any]:
    """Produce with acks=0; returns librdkafka's last statistics of broker 0."""
    errors: list[Any] = []
    stats: list[dict[str, Any]] = []
    delivered: list[Any] = []
    producer = ConfluentProducer({
        "bootstrap.servers": bootstrap, "request.required.acks": 0, "linger.ms": 5,
        "batch.num.messages": 10, "partitioner": "murmur2_random",
        "statistics.interval.ms": 100, "stats_cb": lambda s: stats.append(json.loads(s)),
        "error_cb": errors.append, **QUIET})
    for key, value in records:
        producer.produce(topic, value, key, headers=[("key", key), ("client", b"librdkafka")],
                         on_delivery=lambda err, msg: delivered.append((err, msg)))
        producer.poll(0)
    assert producer.flush(20) == 0
    assert [err for err, _ in delivered] == [None] * len(records)
    seen = len(stats)
    eventually(lambda: producer.poll(0.1) is not None and len(stats) > seen + 1,
               what="statistics after the flush")
    assert not errors, errors
    (broker,) = [b for b in stats[-1]["brokers"].values() if b["nodeid"] == 0]
    return dict(broker)


def _produce_kafka_python_acks0(bootstrap: str, topic: str,
                                records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=0, linger_ms=5,
                             batch_size=400)
    futures = [producer.send(topic, key=key, value=value,
                             headers=[("key", key), ("client", b"kafka-python")])
               for key, value in records]
    producer.flush(20)
    assert all(f.succeeded() for f in futures)
    producer.close(10)


@pytest.mark.parametrize("client", ["librdkafka", "kafka-python"])
def test_an_acks_0_producer_writes_every_record_once_and_gets_no_reply(
        client: str, start: Callable[..., KafkaGateway], live_platform: LocalPlatform,
        topic: str) -> None:
    engine = live_platform.engine()
    engine.create_topic(topic, ACKS0_PARTITIONS)
    served = Served(start())
    records = [(f"key-{i % 17}".encode(), f"{client}-{i}".encode())
               for i in range(ACKS0_RECORDS)]
    if client == "librdkafka":
        broker = _produce_confluent_acks0(served.gateway.bootstrap, topic, records)
        # a reply to an acks=0 request has no request waiting for it: librdkafka counts it
        assert (broker["rxcorriderrs"], broker["req_timeouts"], broker["disconnects"]) == \
            (0, 0, 0)
    else:
        _produce_kafka_python_acks0(served.gateway.bootstrap, topic, records)

    eventually(lambda: sum(_highs(engine, topic, ACKS0_PARTITIONS).values())
               >= ACKS0_RECORDS, what="every record appended")
    got = _read_back(live_platform, topic, ACKS0_PARTITIONS)
    expected = _sent_by_partition(records, ACKS0_PARTITIONS)
    for partition, read in got.items():  # once each, in send order, at dense offsets
        assert [r.value for r in read] == expected[partition]
        assert [r.offset for r in read] == list(range(len(expected[partition])))
        for record in read:
            assert record.headers == [("key", record.key),
                                      ("client", client.encode())]
            assert murmur2_partition(record.key or b"", ACKS0_PARTITIONS) == partition

    produces = served.produces()
    assert len(produces) > 3  # several requests, each of which a reply would have followed
    assert {acks for acks, _, _ in produces} == {0}
    assert not any(answered for _, answered, _ in produces)
    assert len({id(session) for _, _, session in produces}) == 1  # one connection throughout


def _batch(count: int, *, tag: bytes) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i in range(count):
        builder.append(i, timestamp=now, key=b"k", value=tag + b"-%d" % i, headers=[])
    return bytes(builder.build())


def _frame(request: Any, version: int, correlation: int) -> bytes:
    request.API_VERSION = version
    request.with_header(correlation_id=correlation, client_id="raw")
    return bytes(request.encode(header=True, framed=True))


def _produce_frame(topic: str, partition: int, records: bytes, acks: int,
                   correlation: int) -> bytes:
    cls = ProduceRequest[9]
    data = cls.TopicProduceData(name=topic, partition_data=[
        cls.TopicProduceData.PartitionProduceData(index=partition, records=records)])
    return _frame(cls(transactional_id=None, acks=acks, timeout_ms=5000, topic_data=[data]),
                  9, correlation)


def test_acks_0_produces_are_not_answered_and_the_connection_serves_on(
        start: Callable[..., KafkaGateway], live_platform: LocalPlatform, topic: str) -> None:
    """On one connection: an acks=0 Produce that succeeds, then an acks=1 Produce and an
    ApiVersions. Only the last two are answered, in order, and the acks=1 batch lands
    right after the acks=0 one."""
    engine = live_platform.engine()
    engine.create_topic(topic, 1)
    served = Served(start())
    frames = [
        _produce_frame(topic, 0, _batch(3, tag=b"acks0"), 0, 5),
        _produce_frame(topic, 0, _batch(2, tag=b"acks1"), 1, 6),
        _frame(ApiVersionsRequest[3](client_software_name="raw",
                                     client_software_version="1"), 3, 7),
    ]
    with socket.create_connection(served.gateway.advertised, timeout=10) as sock:
        sock.sendall(b"".join(frames))
        produced = ProduceResponse[9].decode(read_frame(sock), version=9, header=True)
        versions = read_frame(sock)
        assert struct.unpack_from(">i", versions)[0] == 7  # ApiVersions' correlation id
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing else comes, and the socket is open
            sock.recv(1)
    assert produced.header.correlation_id == 6
    ((answer,),) = [t.partition_responses for t in produced.responses]
    assert (answer.error_code, answer.base_offset) == (0, 3)
    assert [(acks, answered) for acks, answered, _ in served.produces()] == \
        [(0, False), (1, True)]
    (read,) = _read_back(live_platform, topic, 1).values()
    assert [r.value for r in read] == [b"acks0-0", b"acks0-1", b"acks0-2",
                                       b"acks1-0", b"acks1-1"]


def test_a_stopped_gateway_closes_the_connections_it_served(
        start: Callable[..., KafkaGateway], topic: str) -> None:
    """Stopping a gateway ends each open connection, an idle one and one whose JoinGroup
    is still waiting (a new group's initial delay): the clients read the end of the
    stream at once, not when the process exits."""
    gateway = start()
    idle, joining = (socket.create_connection(gateway.advertised, timeout=10)
                     for _ in range(2))
    try:
        idle.sendall(_frame(ApiVersionsRequest[3](client_software_name="raw",
                                                  client_software_version="1"), 3, 1))
        assert struct.unpack_from(">i", read_frame(idle))[0] == 1
        join = JoinGroupRequest[3]
        joining.sendall(_frame(join(
            group_id=f"stop-{topic}", session_timeout_ms=10_000, rebalance_timeout_ms=10_000,
            member_id="", protocol_type="consumer",
            protocols=[join.JoinGroupRequestProtocol(name="range", metadata=b"")]), 3, 2))
        eventually(lambda: len(gateway._connections) == 2, what="both connections served")
        time.sleep(0.2)  # the JoinGroup waits a second for more members
        gateway.stop()
        for sock in (idle, joining):
            sock.settimeout(5)
            assert sock.recv(1) == b""  # closed by the gateway
    finally:
        idle.close()
        joining.close()


@pytest.mark.parametrize("failure", ["missing topic", "bad crc", "truncated",
                                     "no such partition"])
def test_a_failed_acks_0_produce_closes_the_connection(
        start: Callable[..., KafkaGateway], live_platform: LocalPlatform, topic: str,
        failure: str) -> None:
    """As a broker does: a client that gets no answers learns of the failure when its
    connection closes (and refreshes its metadata); nothing is written, and the requests
    behind the failed one are not served."""
    engine = live_platform.engine()
    engine.create_topic(topic, 1)
    served = Served(start())
    corrupt = bytearray(_batch(2, tag=b"corrupt"))
    corrupt[-1] ^= 0xFF  # the CRC covers it
    target, partition, records = {
        "missing topic": (f"{topic}-missing", 0, _batch(2, tag=b"lost")),
        "bad crc": (topic, 0, bytes(corrupt)),
        "truncated": (topic, 0, _batch(2, tag=b"cut")[:40]),
        "no such partition": (topic, 7, _batch(2, tag=b"nowhere")),
    }[failure]
    frames = [_produce_frame(target, partition, records, 0, 1),
              _produce_frame(topic, 0, _batch(2, tag=b"behind"), 1, 2)]
    with socket.create_connection(served.gateway.advertised, timeout=10) as sock:
        sock.sendall(b"".join(frames))
        # closed with no reply (a reset if the second request was still unread)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
    assert [(acks, answered) for acks, answered, _ in served.produces()] == [(0, False)]
    assert f"{topic}-missing" not in engine.list_topics()
    assert engine.watermarks(topic, 0) == (0, 0)


# ---- one group across gateways -------------------------------------------------------------

class Member:
    """A kafka-python group member on its own thread: polls, and commits what each poll
    returned (synchronously, through its own gateway). ``pause`` stops its polling for
    good (its heartbeats go on); ``leave`` closes it (LeaveGroup)."""

    def __init__(self, name: str, bootstrap: str, topic: str, group: str) -> None:
        self.name = name
        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                      client_id=name, auto_offset_reset="earliest",
                                      enable_auto_commit=False, **SESSION)
        self.records: list[tuple[int, int, bytes]] = []
        self.assignment: frozenset[int] = frozenset()
        self.errors: list[Exception] = []
        self._polling = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._polling.set()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._polling.is_set():
                self._idle.set()
                time.sleep(0.05)
                continue
            self._idle.clear()
            try:
                batches = self.consumer.poll(timeout_ms=200)
                for records in batches.values():
                    self.records += [(r.partition, r.offset, r.value) for r in records]
                if batches:
                    self.consumer.commit()
                self.assignment = frozenset(tp.partition for tp in self.consumer.assignment())
            except Exception as error:  # kept for the assertions
                self.errors.append(error)

    def pause(self) -> None:
        self._polling.clear()
        assert self._idle.wait(10), f"{self.name} did not stop polling"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def leave(self) -> None:
        self.stop()
        self.consumer.close(autocommit=False)

    def offsets(self) -> list[tuple[int, int]]:
        return [(p, o) for p, o, _ in self.records]


def _produce_to_each(bootstrap: str, topic: str, partitions: int, per_partition: int,
                     tag: str) -> set[tuple[int, int]]:
    """``per_partition`` records to every partition; their (partition, offset)s."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    futures = [producer.send(topic, value=f"{tag}-{p}-{i}".encode(), partition=p)
               for i in range(per_partition) for p in range(partitions)]
    producer.flush(20)
    placed = {(md.partition, md.offset) for md in (f.get(10) for f in futures)}
    producer.close(10)
    return placed


def _committed(engine: Engine, group: str) -> dict[int, int | None]:
    leases = engine.groups.snapshot(group).leases
    return {tp.partition: lease.committed for tp, lease in leases.items()}


def _owners_are_one_each(members: list[Member], partitions: int) -> bool:
    """Every partition assigned, and to exactly one of ``members``."""
    owned = [p for m in members for p in m.assignment]
    return sorted(owned) == list(range(partitions))


def test_members_on_three_gateways_form_one_group_and_take_over_from_each_other(
        start: Callable[..., KafkaGateway], live_platform: LocalPlatform, topic: str) -> None:
    """Three gateways, one member bootstrapped from each: one group, each partition owned
    by one member. A member that leaves (through its gateway) and a gateway that stops
    (its member never heard from again) leave records unread on their partitions: the
    members on the other gateways take those partitions over from the committed offsets
    and read every record, none twice."""
    partitions, group = 6, f"across-{topic}"
    engine = live_platform.engine()
    engine.create_topic(topic, partitions)
    served = [Served(start()) for _ in range(3)]
    a, b, c = (Member(name, s.gateway.bootstrap, topic, group)
               for name, s in zip("abc", served, strict=True))
    members = [a, b, c]
    sent: set[tuple[int, int]] = set()

    def consumed() -> list[tuple[int, int]]:
        return [o for m in (a, b, c) for o in m.offsets()]

    def read_and_committed(skip: frozenset[int] = frozenset()) -> bool:
        """Every record sent to the partitions not in ``skip`` read and committed."""
        highs, committed = _highs(engine, topic, partitions), _committed(engine, group)
        return ({o for o in consumed() if o[0] not in skip}
                == {o for o in sent if o[0] not in skip}
                and all(committed.get(p) == highs[p] for p in highs if p not in skip))

    def progress() -> str:
        unread = sorted(sent - set(consumed()))
        return (f"unread {unread[:12]}, committed {_committed(engine, group)}, high "
                f"{_highs(engine, topic, partitions)}, owners "
                f"{[(m.name, sorted(m.assignment)) for m in members]}, errors "
                f"{[m.errors[-3:] for m in members]}")

    def stop_reading(member: Member, via: Served, tag: str, read_below: int) -> None:
        """``member`` stops polling and five more records go to each partition through
        ``via``: the others read theirs, ``member``'s wait unread at ``read_below``."""
        member.pause()
        held = member.assignment
        sent.update(_produce_to_each(via.gateway.bootstrap, topic, partitions, 5, tag))
        eventually(lambda: read_and_committed(held), what=progress)
        assert all(o < read_below for p, o in consumed() if p in held)

    try:
        eventually(lambda: _owners_are_one_each(members, partitions)
                   and all(m.assignment for m in members), timeout=30,
                   what=lambda: f"one owner per partition: {[m.assignment for m in members]}")
        stored = engine.kafka_groups.load(group)
        assert stored is not None and len(stored.members) == 3
        sent |= _produce_to_each(served[0].gateway.bootstrap, topic, partitions, 5, "one")
        eventually(read_and_committed, what=progress)

        # b stops reading; the records sent now to its partitions wait for it
        stop_reading(b, served[1], "two", 5)  # b's second five wait
        b.leave()  # LeaveGroup through gateway b: a and c rebalance and read b's share
        members.remove(b)
        eventually(lambda: _owners_are_one_each([a, c], partitions), timeout=30,
                   what=lambda: f"a and c to own b's partitions: {a.assignment} {c.assignment}")
        eventually(read_and_committed, what=progress)

        # c stops reading, then its gateway stops: c is never heard from again
        stop_reading(c, served[2], "three", 10)  # c's third five wait
        served[2].gateway.stop()
        c.stop()
        eventually(lambda: a.assignment == frozenset(range(partitions)), timeout=30,
                   what=lambda: f"a to own c's partitions once c's session expired: "
                                f"{a.assignment}")
        eventually(read_and_committed, what=progress)
        offsets = consumed()
        assert len(offsets) == len(set(offsets)) == len(sent)  # none twice, none lost
        assert not a.errors and not b.errors
        for each in served:  # each gateway served its member's group and reads
            assert {ApiKey.FindCoordinator, ApiKey.JoinGroup, ApiKey.SyncGroup,
                    ApiKey.Heartbeat, ApiKey.Fetch, ApiKey.OffsetCommit} <= each.apis()
        assert ApiKey.LeaveGroup in served[1].apis()
    finally:
        for member in (a, b, c):
            member.stop()
            member.consumer.close(autocommit=False, timeout_ms=1000)


def _poll(consumer: KafkaConsumer, count: int, timeout: float = 20.0
          ) -> list[tuple[int, int]]:
    """(partition, offset) of what ``consumer`` polls until ``count`` records or timeout."""
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=300).values():
            got += [(r.partition, r.offset) for r in records]
    return got


def test_offsets_committed_through_one_gateway_are_read_through_another(
        start: Callable[..., KafkaGateway], live_platform: LocalPlatform, topic: str) -> None:
    """kafka-python commits through gateway a; through gateway b, OffsetFetch answers
    those offsets and a new member resumes there (re-reading nothing); its commit through
    b is what librdkafka's OffsetFetch through gateway c answers."""
    partitions, group = 3, f"resume-{topic}"
    live_platform.engine().create_topic(topic, partitions)
    a, b, c = start(), start(), start()
    sent = _produce_to_each(a.bootstrap, topic, partitions, 10, "r")
    tps = [TopicPartition(topic, p) for p in range(partitions)]

    first = KafkaConsumer(topic, bootstrap_servers=a.bootstrap, group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=False, **SESSION)
    assert sorted(_poll(first, len(sent))) == sorted(sent)
    first.commit({tp: OffsetAndMetadata(7, f"at-7-{tp.partition}", -1) for tp in tps})
    first.close(autocommit=False)

    second = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group,
                           auto_offset_reset="earliest", enable_auto_commit=False, **SESSION)
    try:
        for tp in tps:  # OffsetFetch through b
            committed = second.committed(tp, metadata=True)
            assert (committed.offset, committed.metadata) == (7, f"at-7-{tp.partition}")
        second.subscribe([topic])
        resumed = _poll(second, 3 * partitions)
        resumed += _poll(second, 1, timeout=1.0)  # and nothing more
        assert sorted(resumed) == [(p, o) for p in range(partitions) for o in (7, 8, 9)]
        second.commit()
    finally:
        second.close(autocommit=False)

    reader = ConfluentConsumer({"bootstrap.servers": c.bootstrap, "group.id": group,
                                **QUIET})
    try:
        committed = reader.committed([ConfluentPartition(topic, p)
                                      for p in range(partitions)], 10)
    finally:
        reader.close()
    assert [(tp.partition, tp.offset) for tp in committed] == \
        [(p, 10) for p in range(partitions)]


# ---- one producer across gateways ----------------------------------------------------------

def test_an_idempotent_producer_moved_to_another_gateway_writes_no_duplicates(
        start: Callable[..., KafkaGateway], live_platform: LocalPlatform, topic: str) -> None:
    """librdkafka's idempotent producer writes through gateway a, which dies after
    appending a batch and before answering it; a fresh gateway b on the same address (a
    load balancer's) takes the retries. Meanwhile kafka-python writes to the same
    partitions through gateway c. Every partition's offsets are dense and hold each
    record once, in the order each producer sent it."""
    partitions = 2
    engine = live_platform.engine()
    engine.create_topic(topic, partitions)
    a, c = start(), start()
    port = a.port
    died = threading.Event()
    produces = [0]
    answer = a._answer

    async def dying(session: Session, frame: bytes) -> bytes | None:
        if died.is_set():
            session.closing = True
            return None
        reply = await answer(session, frame)  # appended
        if parse_header(frame)[0] == ApiKey.Produce:
            produces[0] += 1
            if produces[0] == 4:  # ... and the reply never leaves: gateway a is gone
                died.set()
                assert a._server is not None
                a._server.close()
                for task in list(a._connections):
                    task.cancel()
                return None
        return reply

    a._answer = dying  # type: ignore[method-assign]
    moved = [(f"m{i % 5}".encode(), f"moved-{i}".encode()) for i in range(200)]
    beside = [(f"b{i % 5}".encode(), f"beside-{i}".encode()) for i in range(100)]

    def write_beside() -> None:
        producer = KafkaProducer(bootstrap_servers=c.bootstrap, linger_ms=2, acks="all")
        for key, value in beside:
            producer.send(topic, key=key, value=value)
            time.sleep(0.002)
        producer.flush(30)
        producer.close(10)

    other = threading.Thread(target=write_beside, daemon=True)
    other.start()
    producer = ConfluentProducer({
        "bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 2,
        "batch.num.messages": 10, "partitioner": "murmur2_random",
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300, **QUIET})
    delivered: list[Any] = []
    for key, value in moved:
        producer.produce(topic, value, key,
                         on_delivery=lambda err, msg: delivered.append((err, msg)))
        producer.poll(0)
    assert died.wait(20)
    a.stop()
    b = Served(start(port))  # a new gateway process behind the same address
    assert producer.flush(30) == 0
    assert b.produces()  # the retries and the rest went through b
    other.join(30)
    assert [err for err, _ in delivered] == [None] * len(moved)

    got = _read_back(live_platform, topic, partitions)
    for partition, read in got.items():
        assert [r.offset for r in read] == list(range(len(read)))  # dense
        values = [r.value for r in read]
        for kind, sent in (("moved", moved), ("beside", beside)):
            mine = [v for v in values if v is not None and v.startswith(kind.encode())]
            assert mine == _sent_by_partition(sent, partitions)[partition]  # once, in order
    assert sum(len(read) for read in got.values()) == len(moved) + len(beside)
