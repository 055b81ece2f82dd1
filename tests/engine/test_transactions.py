"""Transactions in the engine: atomic visibility across partitions and topics, aborts,
timeouts, zombie fencing, idempotent commits, offsets committed with the output, the
archiver, limits and bad input."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from streamlet.clock import ManualClock
from streamlet.codec import decode_batch
from streamlet.engine import Engine, schema
from streamlet.errors import (
    CommitFailed,
    InvalidRequest,
    InvalidTxnState,
    ProducerFenced,
    TransactionAborted,
    TransactionTooLarge,
)
from streamlet.local import serialized_moto
from streamlet.records import ProducerIdentity, TopicPartition, TxnOffsets
from streamlet.txn import MAX_TRANSACT_ITEMS, TIMEOUT_MAX_MS
from tests.batches import make_batch

T0 = float(int(time.time()))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def world() -> Iterator[tuple[Any, Any]]:
    with mock_aws(), serialized_moto():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        Engine(ddb, s3).provision(s3)
        yield ddb, s3


@pytest.fixture
def engine(world: tuple[Any, Any], clock: ManualClock) -> Engine:
    eng = Engine(world[0], world[1], clock=clock)
    eng.create_topic("in", partitions=4)
    eng.create_topic("out", partitions=3)
    eng.create_topic("audit", partitions=1)
    return eng


class TxnProducer:
    """What the SDK's transactional producer does, at the engine's level."""

    def __init__(self, engine: Engine, tid: str = "app-1", timeout_ms: int = 60_000) -> None:
        self.engine, self.tid = engine, tid
        self.who = engine.init_transactions(tid, timeout_ms)
        self.seq: dict[tuple[str, int], int] = defaultdict(int)
        self.number = -1
        self.sent: dict[tuple[str, int], list[int]] = defaultdict(list)

    def begin(self) -> int:
        self.number = self.engine.begin_transaction(self.who)
        self.sent = defaultdict(list)
        return self.number

    def send(self, topic: str, partition: int, vals: list[bytes]) -> int:
        batch = make_batch(vals, pid=self.who.producer_id, epoch=self.who.epoch,
                           seq=self.seq[(topic, partition)])
        result = self.engine.append(topic, partition, batch,
                                    transaction=(self.tid, self.number))
        self.seq[(topic, partition)] += len(vals)
        self.sent[(topic, partition)].append(result.base_offset)
        return result.base_offset

    def commit(self, **kwargs: Any) -> Any:
        return self.engine.commit_transaction(self.who, self.number, self.sent, **kwargs)

    def abort(self) -> Any:
        return self.engine.abort_transaction(self.who, self.number)


def plain(engine: Engine, topic: str, partition: int, vals: list[bytes]) -> int:
    return engine.append(topic, partition, make_batch(vals)).base_offset


def read(engine: Engine, topic: str, partition: int, offset: int = 0,
         isolation: str = "read_committed") -> tuple[list[bytes], int]:
    """Every record value readable from ``offset``, and where reading stopped."""
    out: list[bytes] = []
    while True:
        result = engine.fetch(topic, partition, offset, isolation_level=isolation)
        for batch in result.batches:
            out += [r.value or b"" for r in decode_batch(topic, partition, batch)
                    if r.offset >= offset]
        if result.high_watermark == offset:
            return out, offset
        offset = result.high_watermark


# ---- atomic visibility -----------------------------------------------------------------


def test_a_commit_shows_every_partition_and_topic_at_once(engine: Engine) -> None:
    plain(engine, "out", 0, [b"before"])
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 0, [b"o0-a", b"o0-b"])
    txn.send("out", 2, [b"o2"])
    txn.send("audit", 0, [b"au"])
    txn.send("out", 0, [b"o0-c"])
    plain(engine, "out", 0, [b"after"])  # behind the open transaction: not readable yet

    assert read(engine, "out", 0) == ([b"before"], 1)  # stops at the last stable offset
    assert read(engine, "out", 2) == ([], 0)
    assert read(engine, "audit", 0) == ([], 0)
    uncommitted, _ = read(engine, "out", 0, isolation="read_uncommitted")
    assert uncommitted == [b"before", b"o0-a", b"o0-b", b"o0-c", b"after"]

    info = txn.commit()
    assert (info.status, info.partitions, info.batches) == ("committed", 3, 4)
    assert read(engine, "out", 0)[0] == [b"before", b"o0-a", b"o0-b", b"o0-c", b"after"]
    assert read(engine, "out", 2)[0] == [b"o2"]
    assert read(engine, "audit", 0)[0] == [b"au"]


def test_an_aborted_transaction_is_never_visible_and_its_offsets_are_spent(
        engine: Engine) -> None:
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 1, [b"x1", b"x2"])
    txn.send("out", 1, [b"x3"])
    txn.abort()
    plain(engine, "out", 1, [b"kept"])
    values_read, end = read(engine, "out", 1)
    assert values_read == [b"kept"]
    assert end == 4  # offsets 0..2 were spent on the aborted batches
    # a reader positioned inside the aborted range moves past it
    assert engine.fetch("out", 1, 1).high_watermark == 4
    # and it stays invisible after a later transaction of the same id commits
    txn.begin()
    txn.send("out", 1, [b"y"])
    txn.commit()
    assert read(engine, "out", 1)[0] == [b"kept", b"y"]
    assert engine.abort_transaction(txn.who, 0).status == "aborted"  # idempotent
    with pytest.raises(InvalidTxnState, match="already committed"):
        engine.abort_transaction(txn.who, 1)


def test_a_batch_the_commit_does_not_list_stays_invisible(engine: Engine) -> None:
    """A late resend of a send, landing after the commit, carries the transaction's name
    but is not listed in its record: it is never read."""
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 0, [b"listed"])
    txn.commit()
    late = make_batch([b"late"], pid=txn.who.producer_id, epoch=txn.who.epoch, seq=99)
    engine.log.append("out", 0, late, txn=(txn.tid, txn.number))  # past the check
    plain(engine, "out", 0, [b"next"])
    assert read(engine, "out", 0)[0] == [b"listed", b"next"]


# ---- misuse and fencing ----------------------------------------------------------------


def test_sends_and_commits_need_an_open_transaction(engine: Engine) -> None:
    txn = TxnProducer(engine)
    with pytest.raises(InvalidTxnState, match="no transaction 0"):
        txn.number = 0
        txn.send("out", 0, [b"v"])
    txn.begin()
    txn.send("out", 0, [b"v"])
    txn.commit()
    with pytest.raises(InvalidTxnState, match="already committed"):
        txn.send("out", 0, [b"again"])
    non_idempotent = make_batch([b"v"])
    txn.begin()
    with pytest.raises(InvalidTxnState, match="producer id and epoch"):
        engine.append("out", 0, non_idempotent, transaction=(txn.tid, txn.number))
    with pytest.raises(InvalidTxnState, match="init_transactions first"):
        engine.begin_transaction(ProducerIdentity("never-initialised", 1, 0))


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 250, ".", "with space", 7])
def test_bad_transactional_ids_are_refused(engine: Engine, bad: Any) -> None:
    with pytest.raises(InvalidRequest, match="Transactional id"):
        engine.init_transactions(bad)


@pytest.mark.parametrize("bad", [0, 999, TIMEOUT_MAX_MS + 1, True, "60000"])
def test_timeouts_outside_kafkas_bounds_are_refused(engine: Engine, bad: Any) -> None:
    with pytest.raises(InvalidRequest, match="transaction_timeout_ms"):
        engine.init_transactions("app", bad)


def test_init_fences_the_zombie_and_aborts_what_it_left_open(engine: Engine) -> None:
    zombie = TxnProducer(engine, "enricher")
    zombie.begin()
    zombie.send("out", 0, [b"zombie-1"])
    successor = TxnProducer(engine, "enricher")  # a new instance: epoch + 1
    assert successor.who.producer_id == zombie.who.producer_id
    assert successor.who.epoch == zombie.who.epoch + 1

    with pytest.raises(ProducerFenced, match="epoch"):
        zombie.send("out", 0, [b"zombie-2"])
    with pytest.raises(ProducerFenced):
        zombie.commit()
    with pytest.raises(ProducerFenced):
        engine.begin_transaction(zombie.who)
    ended = engine.list_transactions(include_ended=True)
    assert [(t.number, t.status) for t in ended] == [(0, "aborted")]
    assert ended[0].reason.startswith("fenced")

    successor.begin()
    successor.send("out", 0, [b"successor"])
    successor.commit()
    assert read(engine, "out", 0)[0] == [b"successor"]


def test_a_zombies_commit_prepared_before_the_epoch_bump_is_refused(
        engine: Engine, world: tuple[Any, Any], clock: ManualClock) -> None:
    """The zombie reads everything it needs, is paused, and sends its commit only after
    another process fenced it: the commit's own conditions refuse it."""
    zombie = TxnProducer(engine, "enricher")
    zombie.begin()
    zombie.send("out", 1, [b"z"])
    paused = threading.Event()
    go = threading.Event()
    real = engine._ddb.transact_write_items
    outcome: list[BaseException | Any] = []

    def delayed(**kwargs: Any) -> Any:
        paused.set()
        go.wait(10)
        return real(**kwargs)

    engine._ddb.transact_write_items = delayed  # type: ignore[method-assign]
    worker = threading.Thread(target=lambda: outcome.append(_catch(zombie.commit)))
    worker.start()
    assert paused.wait(10)
    other = Engine(boto3.client("dynamodb", region_name="us-east-1"), world[1], clock=clock)
    started = time.monotonic()
    TxnProducer(other, "enricher")  # another process fences it meanwhile
    assert time.monotonic() - started < 5
    go.set()
    worker.join(10)
    engine._ddb.transact_write_items = real  # type: ignore[method-assign]
    assert isinstance(outcome[0], ProducerFenced)
    assert read(engine, "out", 1) == ([], 1)


def _catch(call: Any) -> Any:
    try:
        return call()
    except Exception as error:  # the test inspects it
        return error


# ---- timeouts --------------------------------------------------------------------------


def test_an_abandoned_transaction_blocks_readers_only_until_its_timeout(
        engine: Engine, clock: ManualClock) -> None:
    txn = TxnProducer(engine, timeout_ms=10_000)
    txn.begin()
    txn.send("out", 2, [b"abandoned"])
    plain(engine, "out", 2, [b"behind"])
    assert read(engine, "out", 2) == ([], 0)
    clock.advance(9)
    assert read(engine, "out", 2) == ([], 0)
    clock.advance(2)  # past the deadline: the reader aborts it and reads on
    assert read(engine, "out", 2)[0] == [b"behind"]
    record = engine.list_transactions(include_ended=True)[0]
    assert record.status == "aborted" and "timed out" in record.reason
    with pytest.raises(TransactionAborted, match="timed out"):
        txn.commit()
    with pytest.raises(TransactionAborted):
        txn.send("out", 2, [b"late"])


def test_a_commit_after_the_deadline_is_refused_even_if_nobody_aborted_it(
        engine: Engine, clock: ManualClock) -> None:
    txn = TxnProducer(engine, timeout_ms=5_000)
    txn.begin()
    txn.send("out", 0, [b"slow"])
    clock.advance(6)
    with pytest.raises(TransactionAborted, match="timed out"):
        txn.commit()
    assert read(engine, "out", 0) == ([], 1)
    txn.begin()  # the id goes on
    txn.send("out", 0, [b"next"])
    txn.commit()
    assert read(engine, "out", 0)[0] == [b"next"]


def test_the_ids_next_begin_aborts_its_own_expired_transaction(
        engine: Engine, clock: ManualClock) -> None:
    txn = TxnProducer(engine, timeout_ms=5_000)
    first = txn.begin()
    txn.send("out", 0, [b"lost"])
    clock.advance(6)
    second = txn.begin()
    assert second == first + 1
    assert engine.transactions.record(txn.tid, first).status == "aborted"  # type: ignore[union-attr]


def test_a_retried_begin_gets_the_same_transaction(engine: Engine) -> None:
    txn = TxnProducer(engine)
    first = txn.begin()
    assert engine.begin_transaction(txn.who) == first  # the reply of the first was lost
    assert [t.number for t in engine.list_transactions()] == [first]


# ---- idempotent commit -----------------------------------------------------------------


def test_a_commit_whose_reply_was_lost_is_answered_by_its_retry_from_another_process(
        engine: Engine, world: tuple[Any, Any], clock: ManualClock) -> None:
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 0, [b"once"])
    real = engine._ddb.transact_write_items

    def applied_then_lost(**kwargs: Any) -> Any:
        real(**kwargs)
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "lost"},
                           "ResponseMetadata": {"HTTPStatusCode": 500}}, "TransactWriteItems")

    engine._ddb.transact_write_items = applied_then_lost  # type: ignore[method-assign]
    try:
        assert txn.commit().status == "committed"  # re-read the record: it landed
    finally:
        engine._ddb.transact_write_items = real  # type: ignore[method-assign]
    again = Engine(world[0], world[1], clock=clock)  # the caller retries elsewhere
    assert again.commit_transaction(txn.who, txn.number, txn.sent).status == "committed"
    assert read(engine, "out", 0)[0] == [b"once"]


# ---- offsets with the output ---------------------------------------------------------------


def _lease(engine: Engine, group: str, tp: TopicPartition, member: str) -> int:
    engine.groups.ensure_leases(group, [tp])
    seen = engine.groups.lease(group, tp)
    assert seen is not None
    taken = engine.groups.take(group, tp, member, seen)
    assert taken is not None
    return taken.epoch


def test_offsets_commit_with_the_output_or_not_at_all(engine: Engine) -> None:
    tp0, tp1 = TopicPartition("in", 0), TopicPartition("in", 1)
    e0, e1 = _lease(engine, "g", tp0, "m-1"), _lease(engine, "g", tp1, "m-1")
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 0, [b"result"])
    txn.commit(offsets=TxnOffsets("g", "m-1", {tp0: (e0, 5, ""), tp1: (e1, 7, "m")}))
    assert engine.groups.lease("g", tp0).committed == 5  # type: ignore[union-attr]
    assert engine.groups.lease("g", tp1).committed == 7  # type: ignore[union-attr]
    assert read(engine, "out", 0)[0] == [b"result"]

    # the member lost partition 1 meanwhile: the whole transaction fails
    stolen = engine.groups.lease("g", tp1)
    assert engine.groups.take("g", tp1, "m-2", stolen) is not None  # type: ignore[arg-type]
    txn.begin()
    txn.send("out", 0, [b"must-not-show"])
    with pytest.raises(CommitFailed, match=r"in\[1\].*aborted"):
        txn.commit(offsets=TxnOffsets("g", "m-1", {tp0: (e0, 9, ""), tp1: (e1, 9, "")}))
    assert engine.groups.lease("g", tp0).committed == 5  # type: ignore[union-attr]
    assert read(engine, "out", 0)[0] == [b"result"]
    assert engine.transactions.record(txn.tid, txn.number).status == "aborted"  # type: ignore[union-attr]


def test_a_transaction_past_one_dynamodb_transaction_is_refused_before_anything_is_written(
        engine: Engine) -> None:
    engine.create_topic("wide", partitions=MAX_TRANSACT_ITEMS)
    offsets = {TopicPartition("wide", p): (1, 1, "") for p in range(MAX_TRANSACT_ITEMS - 1)}
    txn = TxnProducer(engine)
    txn.begin()
    txn.send("out", 0, [b"v"])
    with pytest.raises(TransactionTooLarge, match=r"at most 100 items.*101"):
        txn.commit(offsets=TxnOffsets("g", "m", offsets))
    record = engine.transactions.record(txn.tid, txn.number)
    assert record is not None and record.status == "open"  # nothing was written
    txn.abort()


# ---- contention ------------------------------------------------------------------------


def test_a_ten_partition_commit_does_not_race_rival_producers(
        world: tuple[Any, Any]) -> None:
    """Rival producers append to all ten partitions the transaction writes: two threads
    as fast as moto allows, plus an adversary that lands a rival batch in the window
    between the transaction's tail read and its write, on the first two attempts of every
    send (harder than a steady 200 appends/s per partition, which hits a ~10 ms window
    about 2 times in 10). Sends retry like any append; the commit depends on no
    partition's tail, so its first TransactWriteItems wins every time."""
    own = boto3.client("dynamodb", region_name="us-east-1")
    eng = Engine(own, world[1])
    eng.create_topic("busy", partitions=10)
    stop = threading.Event()
    appended = [0]
    rival_engine = Engine(world[0], world[1])

    def rival(partitions: range) -> None:
        mine = Engine(world[0], world[1])
        while not stop.is_set():
            for p in partitions:
                mine.append("busy", p, make_batch([b"r"]))
                appended[0] += 1

    windows: dict[str, int] = defaultdict(int)

    def adversary(params: dict[str, Any], **_: Any) -> None:
        item = params["Item"]
        send = item[schema.PK]["S"] + "@" + item.get(schema.A_SEQUENCE, {}).get("N", "")
        if schema.A_TXN not in item or windows[send] == 2:
            return
        windows[send] += 1  # this attempt's key is taken just before it is written
        rival_engine.append("busy", int(item[schema.PK]["S"].rsplit("/", 1)[1]),
                            make_batch([b"r"]))

    calls: list[str] = []
    own.meta.events.register("before-call.dynamodb.TransactWriteItems",
                             lambda **_: calls.append("twi"))
    rivals = [threading.Thread(target=rival, args=(range(i, 10, 2),)) for i in range(2)]
    for thread in rivals:
        thread.start()
    try:
        txn = TxnProducer(eng)
        own.meta.events.register("provide-client-params.dynamodb.PutItem", adversary)
        for _ in range(3):
            txn.begin()
            for p in range(10):
                txn.send("busy", p, [f"t{txn.number}-{p}".encode()])
            calls.clear()
            assert txn.commit().status == "committed"
            assert calls == ["twi"]
    finally:
        stop.set()
        for thread in rivals:
            thread.join()
    assert appended[0] > 0 and len(windows) == 30 and set(windows.values()) == {2}
    for p in range(10):
        got = [v for v in read(eng, "busy", p)[0] if v.startswith(b"t")]
        assert got == [f"t{n}-{p}".encode() for n in range(3)]


# ---- the archiver ----------------------------------------------------------------------


def test_archived_segments_keep_aborted_ranges_and_stop_at_open_transactions(
        engine: Engine) -> None:
    a = TxnProducer(engine, "a")
    b = TxnProducer(engine, "b")
    plain(engine, "out", 0, [b"p0"])
    a.begin()
    a.send("out", 0, [b"a-committed"])
    a.commit()
    a.begin()
    a.send("out", 0, [b"a-aborted-1", b"a-aborted-2"])
    a.send("out", 0, [b"a-aborted-3"])
    a.abort()
    plain(engine, "out", 0, [b"p1"])
    b.begin()
    b.send("out", 0, [b"b-open"])
    plain(engine, "out", 0, [b"p2"])

    report = engine.archive("out", force=True)[0]
    assert report.archived_offset == 6  # stopped before b's batch at offset 6
    segment = next(engine.archiver._manifest.segments(engine.topics.get("out").ref(0)))
    assert segment.skipped == ((2, 5),)  # both aborted batches, merged

    assert read(engine, "out", 0)[0] == [b"p0", b"a-committed", b"p1"]
    all_of_it = read(engine, "out", 0, isolation="read_uncommitted")[0]
    assert all_of_it == [b"p0", b"a-committed", b"a-aborted-1", b"a-aborted-2",
                         b"a-aborted-3", b"p1", b"b-open", b"p2"]
    b.commit()
    engine.archive("out", force=True)
    assert engine.watermarks("out", 0) == (0, 8)
    assert read(engine, "out", 0)[0] == [b"p0", b"a-committed", b"p1", b"b-open", b"p2"]


def test_the_archiver_aborts_an_expired_transaction_and_archives_past_it(
        engine: Engine, clock: ManualClock) -> None:
    txn = TxnProducer(engine, timeout_ms=5_000)
    txn.begin()
    txn.send("out", 2, [b"gone"])
    plain(engine, "out", 2, [b"kept"])
    clock.advance(6)
    engine.scheduled_pass()  # archives only what is due...
    engine.archive("out", force=True)
    record = engine.transactions.record(txn.tid, txn.number)
    assert record is not None and record.status == "aborted"
    assert engine.archive("out", force=True)[2].archived_offset == 2
    assert read(engine, "out", 2)[0] == [b"kept"]


def test_a_large_transaction_outlives_a_forced_archive_pass_and_an_eleven_minute_jump(
        engine: Engine, clock: ManualClock) -> None:
    """Staged data is the batch itself (an S3 blob above the inline limit): the archiver
    stops before the open transaction and the blob sweep spares it."""
    txn = TxnProducer(engine, timeout_ms=TIMEOUT_MAX_MS)
    txn.begin()
    big = [bytes([i]) * 60_000 for i in range(3)]
    txn.send("out", 1, big)
    engine.archive("out", force=True)
    clock.advance(11 * 60)
    engine.scheduled_pass()
    engine.archive("out", force=True)
    assert txn.commit().status == "committed"
    assert read(engine, "out", 1)[0] == big
    engine.archive("out", force=True)
    assert read(engine, "out", 1)[0] == big


def test_open_transactions_are_listed_for_operators(engine: Engine) -> None:
    a, b = TxnProducer(engine, "a"), TxnProducer(engine, "b")
    a.begin()
    b.begin()
    b.send("out", 0, [b"v"])
    b.commit()
    listed = engine.list_transactions()
    assert [(t.transactional_id, t.status) for t in listed] == [("a", "open")]
    assert listed[0].deadline_ms - listed[0].started_ms == 60_000
    everything = engine.list_transactions(include_ended=True)
    assert {(t.transactional_id, t.status) for t in everything} == {
        ("a", "open"), ("b", "committed")}


def test_transaction_items_stay_out_of_the_group_listing(engine: Engine) -> None:
    TxnProducer(engine, "app").begin()
    tp = TopicPartition("in", 0)
    engine.groups.ensure_leases("billing", [tp])
    assert engine.groups.list_groups() == ["billing"]
    keys = engine._ddb.scan(TableName=engine.names.groups_table)["Items"]
    assert {k[schema.PK]["S"] for k in keys} == {"group#billing", "txn#app"}


def test_read_committed_and_read_uncommitted_are_the_only_levels(engine: Engine) -> None:
    with pytest.raises(InvalidRequest, match="isolation_level"):
        engine.fetch("out", 0, 0, isolation_level="snapshot")




# ---- Kafka clients' transactions (the gateway's, kept in the records) -----------------


def _kafka_send(engine: Engine, who: ProducerIdentity, topic: str, partition: int,
                vals: list[bytes], seq: int = 0) -> int:
    """What the gateway does for a transactional Produce."""
    kafka = engine.kafka_transactions
    number = kafka.current(who)
    batch = make_batch(vals, pid=who.producer_id, epoch=who.epoch, seq=seq)
    result = engine.append(topic, partition, batch,
                           transaction=(who.transactional_id, number))
    kafka.stage_batch(who, number, topic, partition, result.base_offset)
    return result.base_offset


def test_a_kafka_transaction_commits_through_any_engine(
        engine: Engine, world: tuple[Any, Any], clock: ManualClock) -> None:
    other = Engine(world[0], world[1], clock=clock)  # another gateway's engine
    who = engine.init_transactions("k-1")
    number = engine.kafka_transactions.begin(who)
    assert other.kafka_transactions.begin(who) == number  # joins the open one
    _kafka_send(engine, who, "out", 0, [b"a"])
    _kafka_send(other, who, "out", 1, [b"b"])
    _kafka_send(engine, who, "audit", 0, [b"c"])
    assert read(engine, "out", 0)[0] == []
    info = other.kafka_transactions.end(who, commit=True)
    assert info.status == "committed"
    assert [read(engine, t, p)[0] for t, p in (("out", 0), ("out", 1), ("audit", 0))] == \
        [[b"a"], [b"b"], [b"c"]]
    assert engine.kafka_transactions.end(who, commit=True).status == "committed"  # a retry


def test_a_transaction_the_log_aborted_is_not_followed_by_a_silent_new_one(
        engine: Engine, clock: ManualClock) -> None:
    kafka = engine.kafka_transactions
    who = engine.init_transactions("k-2", timeout_ms=1_000)
    kafka.begin(who)
    _kafka_send(engine, who, "out", 0, [b"early"])
    clock.advance(2.0)  # the transaction times out; its next AddPartitionsToTxn is refused
    with pytest.raises(TransactionAborted):
        kafka.begin(who)
    with pytest.raises(TransactionAborted):
        kafka.begin(who)  # still: the producer has not acknowledged it
    with pytest.raises(TransactionAborted):
        kafka.end(who, commit=True)
    assert kafka.end(who, commit=False).status == "aborted"  # acknowledged
    kafka.begin(who)
    _kafka_send(engine, who, "out", 0, [b"late"], seq=1)
    kafka.end(who, commit=True)
    assert read(engine, "out", 0)[0] == [b"late"]


def test_kafka_offsets_commit_with_the_output_fenced_by_the_group_generation(
        engine: Engine) -> None:
    from streamlet.engine.kafka_groups import ClassicGroup, ClassicMember, ClassicTxnOffsets

    groups = engine.kafka_groups
    group = ClassicGroup("g-k", state="Stable", generation=3,
                         members={"m-1": ClassicMember("m-1")})
    assert groups.save(group)
    kafka = engine.kafka_transactions
    who = engine.init_transactions("k-3")
    number = kafka.begin(who)
    _kafka_send(engine, who, "out", 0, [b"x"])
    tp = TopicPartition("in", 0)
    kafka.stage_offsets(who, number, ClassicTxnOffsets("g-k", 3, "m-1", {tp: (7, "")}))
    kafka.end(who, commit=True)
    assert engine.groups.snapshot("g-k").leases[tp].committed == 7

    number = kafka.begin(who)
    _kafka_send(engine, who, "out", 0, [b"y"], seq=1)
    kafka.stage_offsets(who, number, ClassicTxnOffsets("g-k", 3, "m-1", {tp: (9, "")}))
    group.generation = 4  # a rebalance after TxnOffsetCommit
    assert groups.save(group)
    with pytest.raises(CommitFailed):
        kafka.end(who, commit=True)
    assert engine.groups.snapshot("g-k").leases[tp].committed == 7
    assert read(engine, "out", 0)[0] == [b"x"]
    kafka.end(who, commit=False)  # acknowledged: the next transaction may begin
    kafka.begin(who)


def test_a_transactional_batch_outside_a_transaction_is_refused(engine: Engine) -> None:
    import struct

    from streamlet.codec import ATTRIBUTES_OFFSET, CRC_OFFSET, calc_crc32c
    from streamlet.errors import InvalidRecord

    data = bytearray(make_batch([b"v"], pid=5, epoch=0, seq=0))
    struct.pack_into(">h", data, ATTRIBUTES_OFFSET, 0x10)
    struct.pack_into(">I", data, CRC_OFFSET, calc_crc32c(bytes(data[ATTRIBUTES_OFFSET:])))
    with pytest.raises(InvalidRecord, match="inside its transaction"):
        engine.append("out", 0, bytes(data))
