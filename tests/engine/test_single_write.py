"""One write per append (issue: single-write appends), and every hazard of a log without a
head item: items that leave by TTL in any order, cached tails, clock skew, ambiguous
writes, seeks inside batches, quiet partitions, deleted and recreated topics."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from streamlet.clock import ManualClock
from streamlet.codec import decode_batch
from streamlet.engine import Engine, schema
from streamlet.engine.log import CACHE_SECONDS, batch_from_item
from streamlet.engine.topics import CACHE_SECONDS as TOPIC_CACHE_SECONDS
from streamlet.engine.topics import TRUST_MARGIN_MS
from streamlet.errors import (
    AppendOutcomeUnknown,
    InvalidTopicName,
    RequestTimedOut,
    TailUnverified,
    Throttled,
    TopicNotFound,
    UnsupportedLayout,
)
from streamlet.local import serialized_moto
from tests.batches import make_batch, values

T0 = float(int(time.time()))
DAY = 24 * 3600


class Calls:
    """Every DynamoDB and S3 operation an engine's clients make."""

    def __init__(self, engine: Engine) -> None:
        self.ops: Counter[str] = Counter()
        self.items_read: list[int] = []
        for client in (engine._ddb, engine.blobs._s3):
            client.meta.events.register("before-call", self._count)
        engine._ddb.meta.events.register("after-call.dynamodb.Query", self._items)

    def _count(self, model: Any, **_: Any) -> None:
        self.ops[model.name] += 1

    def _items(self, parsed: dict[str, Any], **_: Any) -> None:
        self.items_read.append(len(parsed.get("Items", [])))

    def reset(self) -> None:
        self.ops.clear()
        self.items_read.clear()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def world(clock: ManualClock) -> Iterator[tuple[Any, Any]]:
    """In-process moto's DynamoDB and S3 clients, tables and bucket provisioned."""
    with mock_aws(), serialized_moto():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        Engine(ddb, s3).provision(s3)
        yield ddb, s3


def engine_on(world: tuple[Any, Any], clock: ManualClock) -> Engine:
    """Another engine on the same tables (another Lambda, another process)."""
    return Engine(world[0], world[1], clock=clock)


@pytest.fixture
def engine(world: tuple[Any, Any], clock: ManualClock) -> Engine:
    return engine_on(world, clock)


def items(engine: Engine, topic: str, partition: int = 0) -> list[dict[str, Any]]:
    meta = engine.topics.get(topic, fresh=True)
    return engine.log.query(meta, meta.ref(partition), schema.batch_sk(0),
                            schema.batch_sk(schema.MAX_OFFSET), 10_000)


def reap(engine: Engine, topic: str, now_s: float, *, fraction: float = 1.0,
         seed: int = 0, partition: int = 0) -> int:
    """DynamoDB TTL: delete expired batch items, in random order, some of them only."""
    rng = random.Random(seed)
    expired = [i for i in items(engine, topic, partition)
               if schema.TTL in i and int(i[schema.TTL]["N"]) <= now_s]
    rng.shuffle(expired)
    gone = expired[:int(len(expired) * fraction)]
    for item in gone:
        engine._ddb.delete_item(TableName=engine.names.log_table,
                                Key={schema.PK: item[schema.PK], schema.SK: item[schema.SK]})
    return len(gone)


def read_all(engine: Engine, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    low, high = engine.watermarks(topic, partition)
    out: list[tuple[int, bytes]] = []
    while low < high:
        batches = engine.fetch(topic, partition, low).batches
        out += [(r.offset, r.value or b"") for b in batches
                for r in decode_batch(topic, partition, b) if r.offset >= low]
        low = out[-1][0] + 1
    return out


# ---- cost: one write per append ---------------------------------------------------------


def test_an_append_is_one_conditional_put_and_a_warm_one_reads_nothing(engine: Engine) -> None:
    engine.create_topic("t", 1)
    calls = Calls(engine)
    engine.append("t", 0, make_batch([b"x" * 100], pid=7, seq=0))
    assert calls.ops == {"Query": 1, "PutItem": 1}  # the tail, once; then the write
    calls.reset()
    for i in range(1, 20):
        engine.append("t", 0, make_batch([b"x" * 100], pid=7, seq=i))
    assert calls.ops == {"PutItem": 19}  # no transaction, no head, no producer state
    [first, *_] = items(engine, "t")
    size = sum(len(k) + _value_size(v) for k, v in first.items())
    assert size < 1024, size  # one write unit


def _value_size(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    return len(data) if kind in ("S", "B") else len(str(data)) // 2 + 1 if kind == "N" else 1


def test_a_large_batch_is_one_s3_put_and_one_pointer_item(engine: Engine) -> None:
    engine.create_topic("t", 1, {"inline.max.bytes": 1024})
    engine.append("t", 0, make_batch([b"warm"]))
    calls = Calls(engine)
    engine.append("t", 0, make_batch([random.randbytes(5000)]))
    assert calls.ops == {"PutObject": 1, "PutItem": 1}


def test_a_cached_tail_expires_on_the_wall_clock(engine: Engine, clock: ManualClock) -> None:
    engine.create_topic("t", 1)
    engine.append("t", 0, make_batch([b"a"]))
    calls = Calls(engine)
    clock.advance(CACHE_SECONDS - 0.5)
    engine.append("t", 0, make_batch([b"b"]))
    # the tail is still trusted (no Query); the topic's metadata, cached for a shorter
    # time (topics.CACHE_SECONDS), is read again
    assert calls.ops == {"PutItem": 1, "GetItem": 1}
    clock.advance(CACHE_SECONDS + 0.5)  # the deadline passed: read the tail again
    engine.append("t", 0, make_batch([b"c"]))
    assert calls.ops == {"PutItem": 2, "GetItem": 2, "Query": 1}


# ---- dense offsets from many writers ----------------------------------------------------


def test_writers_with_stale_views_never_overlap_or_leave_holes(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    writers = [engine_on(world, clock) for _ in range(4)]
    writers[0].create_topic("t", 1)
    rng = random.Random(3)
    acked = []
    for i in range(120):
        writer = rng.choice(writers)
        n = rng.randint(1, 4)
        result = writer.append("t", 0, make_batch(values(f"w{i}", n)))
        acked.append((result.base_offset, result.last_offset))
    acked.sort()
    assert acked[0][0] == 0
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(acked))
    assert [o for o, _ in read_all(writers[1], "t")] == list(range(acked[-1][1] + 1))


def test_every_item_extends_the_running_values_of_the_one_before(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """Max append time, max timestamp, bytes and TTL never decrease along the log, whatever
    the writers' clocks say (one runs a day fast, one an hour slow)."""
    fast = Engine(world[0], world[1], clock=ManualClock(T0 + DAY))
    slow = Engine(world[0], world[1], clock=ManualClock(T0 - 3600))
    fast.create_topic("t", 1)
    for i in range(30):
        (fast if i % 3 == 0 else slow).append("t", 0, make_batch(values(str(i), 2),
                                                                  ts=1000 + 7 * (i % 5)))
    chain = [batch_from_item(i).chain for i in items(fast, "t")]
    for before, after in itertools.pairwise(chain):
        assert after.append_max >= before.append_max
        assert after.ts_max >= before.ts_max
        assert after.bytes > before.bytes
        assert after.expiry >= before.expiry


# ---- items leave: TTL, in any order, up to 48 h late ------------------------------------


def test_a_reaped_tail_is_never_reused_the_writer_fails_closed(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """The archiver is down; every batch expires and TTL deletes them all, the tail
    included. A writer that reads the partition now must not append at a reused offset."""
    writer = engine_on(world, clock)
    writer.create_topic("t", 1)
    for i in range(5):
        writer.append("t", 0, make_batch(values(str(i), 3)))
    clock.advance(DAY + 3600)  # local.retention.ms is a day
    assert reap(writer, "t", clock.now) == 5
    with pytest.raises(TailUnverified, match="may have expired"):
        engine_on(world, clock).append("t", 0, make_batch([b"late"]))
    assert items(writer, "t") == []  # nothing written at offset 0 again


def test_partly_reaped_tails_in_random_order_never_cause_reuse(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """TTL deletes expired batches in any order; whatever survives, a fresh writer either
    appends after every offset ever acknowledged, or refuses."""
    writer = engine_on(world, clock)
    writer.create_topic("t", 1)
    for round_ in range(6):
        acked_end = 0
        for i in range(8):
            acked_end = writer.append("t", 0, make_batch(values(f"{round_}-{i}", 2))
                                      ).last_offset + 1
            clock.advance(600)
        clock.advance(DAY - 3 * 3600 + random.Random(round_).randint(0, 6 * 3600))
        reap(writer, "t", clock.now, fraction=random.Random(round_).random(), seed=round_)
        fresh = engine_on(world, clock)
        try:
            result = fresh.append("t", 0, make_batch([b"probe"]))
        except TailUnverified:
            break  # refused: the archiver never vouched for the lost tail
        assert result.base_offset == acked_end, round_


def test_after_archiving_a_quiet_partition_whose_batches_expired_still_appends_and_reads(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    writer = engine_on(world, clock)
    writer.create_topic("t", 1, {"retention.ms": 30 * DAY * 1000})
    base_ts = int(T0 * 1000)
    for i in range(4):
        writer.append("t", 0, make_batch(values(str(i), 5), ts=base_ts + 5 * i))
    writer.archive("t", force=True)
    for _ in range(12):  # three quiet days, an archiver pass every 6 hours vouching
        clock.advance(DAY / 4)
        writer.scheduled_pass()
    assert reap(writer, "t", clock.now) == 4  # only the archived copy is left
    reader = engine_on(world, clock)
    assert reader.watermarks("t", 0) == (0, 20)
    assert reader.offset_for_time("t", 0, base_ts + 12) == 12  # from the archive's values
    assert reader.fetch("t", 0, 20, boundary_of=None).batches == []  # caught up
    result = reader.append("t", 0, make_batch([b"after"]))  # the archiver vouched
    assert result.base_offset == 20
    assert [o for o, _ in read_all(reader, "t")] == list(range(21))


# ---- ambiguous writes resolve at their own key ------------------------------------------


def test_botocores_silent_resend_of_an_applied_put_is_recognised(engine: Engine) -> None:
    """The first PutItem lands, its reply is lost, botocore resends it: the resend fails
    its condition with our own batch at the key, which is success, not a rival."""
    engine.create_topic("t", 1)
    engine.append("t", 0, make_batch([b"warm"]))
    real = engine._ddb.put_item
    sent: list[dict[str, Any]] = []

    def applied_then_resent(**kwargs: Any) -> Any:
        if not sent:
            sent.append(kwargs)
            real(**kwargs)  # applied ...
        return real(**kwargs)  # ... and sent again: ConditionalCheckFailed, ALL_OLD ours

    engine._ddb.put_item = applied_then_resent  # type: ignore[method-assign]
    result = engine.append("t", 0, make_batch([b"once"], pid=9, seq=0))
    assert (result.base_offset, result.duplicate) == (1, True)
    engine._ddb.put_item = real  # type: ignore[method-assign]
    assert [v for _, v in read_all(engine, "t")] == [b"warm", b"once"]


def test_a_non_idempotent_batch_is_recognised_by_its_bytes(engine: Engine) -> None:
    engine.create_topic("t", 1)
    real = engine._ddb.put_item
    calls = []

    def applied_then_resent(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            real(**kwargs)
        return real(**kwargs)

    engine._ddb.put_item = applied_then_resent  # type: ignore[method-assign]
    assert engine.append("t", 0, make_batch([b"plain"])).base_offset == 0
    engine._ddb.put_item = real  # type: ignore[method-assign]
    assert read_all(engine, "t") == [(0, b"plain")]


def test_a_retry_after_100000_rival_appends_reads_a_bounded_amount(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """100,000 rival batches are in the partition (written before the first attempt); the
    retry's lookback reads back only as far as its first attempt could reach."""
    writer = engine_on(world, clock)
    writer.create_topic("t", 1)
    rivals = 100_000
    _bulk_rivals(writer, "t", rivals, append_ms=int((T0 - 3600) * 1000))
    sent_ms = int(clock.now * 1000)
    batch = make_batch([b"mine"], pid=42, seq=0)
    first = writer.append("t", 0, batch)  # lands; pretend its reply was lost
    clock.advance(5)
    retrier = engine_on(world, clock)  # another Lambda: no cache, no memory
    calls = Calls(retrier)
    again = retrier.append("t", 0, batch, since_ms=sent_ms)
    assert (again.base_offset, again.duplicate) == (first.base_offset, True) == (rivals, True)
    assert sum(calls.items_read) <= 3, calls.items_read  # not 100,000


# ---- attempts of one batch that overlap -------------------------------------------------
#
# A client gives up on attempt A (no reply) and retries (B, with since_ms) while A still
# runs elsewhere. Whichever of them writes last must find the other's copy, wherever the
# races with rivals put it; and A may start no write once its deadline has passed.


def lambda_on(world: tuple[Any, Any], clock: ManualClock) -> Engine:
    """Another Lambda with its own DynamoDB client, so hooks on one do not touch another."""
    return Engine(boto3.client("dynamodb", region_name="us-east-1"), world[1], clock=clock)


def meanwhile(engine: Engine, operation: str, *happens: Any, after: bool = False) -> None:
    """Run ``happens[n]()`` just before (or after) ``engine``'s next n-th ``operation``."""
    real = getattr(engine._ddb, operation)
    pending = list(happens)

    def hooked(**kwargs: Any) -> Any:
        happening = pending.pop(0)
        if not pending:
            setattr(engine._ddb, operation, real)
        if not after:
            happening()
        answer = real(**kwargs)
        if after:
            happening()
        return answer

    setattr(engine._ddb, operation, hooked)


def one_batch_in_flight(engine: Engine) -> tuple[bytes, int]:
    """Topic "t" holding one batch; an idempotent batch of b"mine" and when it was sent."""
    engine.create_topic("t", 1)
    engine.append("t", 0, make_batch([b"warm"]))
    return make_batch([b"mine"], pid=5, seq=0), int(engine.log._now_ms())


def copies(engine: Engine, topic: str, value: bytes) -> list[int]:
    return [offset for offset, v in read_all(engine, topic) if v == value]


def test_a_first_attempt_that_loses_a_race_finds_the_retry_that_landed_meanwhile(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """A read the tail; before its write a rival takes the key and the client's retry B
    (served by another Lambda, nothing of A to find yet) lands after the rival. A's write
    fails, it reads the tail again: it must find B's copy there, not write a second one."""
    first, retry, rival = (lambda_on(world, clock) for _ in range(3))
    batch, sent_ms = one_batch_in_flight(first)
    landed: list[Any] = []
    meanwhile(first, "put_item", lambda: landed.extend([
        rival.append("t", 0, make_batch([b"rival"])),
        retry.append("t", 0, batch, since_ms=sent_ms)]))
    answer = first.append("t", 0, batch)
    assert (landed[1].base_offset, landed[1].duplicate) == (2, False)
    assert (answer.base_offset, answer.duplicate) == (2, True)
    assert copies(first, "t", b"mine") == [2]


def test_a_first_attempt_in_a_long_conflict_loop_finds_the_retry_under_newer_batches(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """What a loaded machine did: A lost its key, read the tail, lost again, and while it
    looped the client's retry B landed, with a rival's batch on top. A's next tail read
    returns the rival; the batches between the key A lost and that rival (one Query) hold
    B's copy."""
    first, retry, rival = (lambda_on(world, clock) for _ in range(3))
    batch, sent_ms = one_batch_in_flight(first)
    meanwhile(first, "put_item", lambda: rival.append("t", 0, make_batch([b"rival"])),
              lambda: [rival.append("t", 0, make_batch([b"rival 2"])),
                       retry.append("t", 0, batch, since_ms=sent_ms),
                       rival.append("t", 0, make_batch([b"rival 3"]))])
    answer = first.append("t", 0, batch)
    assert (answer.base_offset, answer.duplicate) == (3, True)
    assert copies(first, "t", b"mine") == [3]


def test_a_first_attempt_with_a_stale_cache_reads_only_the_tail_after_losing_its_key(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """A cached tail 20 batches behind: the lost race costs one tail read, as before; the
    batches under that tail are not searched (the request's deadline keeps a retry's copy
    out of them), so a busy partition does not make every stale writer read it all."""
    stale, busy = lambda_on(world, clock), lambda_on(world, clock)
    stale.create_topic("t", 1)
    stale.append("t", 0, make_batch([b"warm"]))
    for i in range(20):
        busy.append("t", 0, make_batch([f"busy {i}".encode()]))
    calls = Calls(stale)
    assert stale.append("t", 0, make_batch([b"mine"], pid=5, seq=0)).base_offset == 21
    assert calls.ops == {"PutItem": 2, "Query": 1}
    assert calls.items_read == [2]


def test_a_retry_that_loses_a_race_finds_the_first_attempt_that_landed_after_its_lookback(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """B looked back (A had not landed), read the tail and lost its key to a rival; A
    landed after that rival, and another rival after A. B's next tail is the second rival:
    the batches between the key B lost and that tail are searched (one Query) and hold A."""
    first, retry, rival = (lambda_on(world, clock) for _ in range(3))
    batch, sent_ms = one_batch_in_flight(first)
    landed: list[Any] = []
    meanwhile(retry, "put_item", lambda: landed.extend([
        rival.append("t", 0, make_batch([b"rival"])),
        first.append("t", 0, batch),
        rival.append("t", 0, make_batch([b"rival 2"]))]))
    answer = retry.append("t", 0, batch, since_ms=sent_ms)
    assert [r.base_offset for r in landed] == [1, 2, 3]
    assert (answer.base_offset, answer.duplicate) == (2, True)
    assert copies(first, "t", b"mine") == [2]


def test_a_retry_finds_the_first_attempt_that_landed_between_its_lookback_and_its_tail(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    first, retry = lambda_on(world, clock), lambda_on(world, clock)
    batch, sent_ms = one_batch_in_flight(first)
    meanwhile(retry, "query", lambda: first.append("t", 0, batch), after=True)  # the lookback
    answer = retry.append("t", 0, batch, since_ms=sent_ms)
    assert (answer.base_offset, answer.duplicate) == (1, True)
    assert copies(first, "t", b"mine") == [1]


def test_a_retry_whose_remembered_key_holds_a_rival_still_looks_back(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """This Lambda's attempt at key 1 was throttled (remembered); the batch then landed
    at 2 through another Lambda. The retry comes back here: key 1 holds a rival, which
    does not settle it; the lookback finds the batch at 2."""
    from botocore.exceptions import ClientError

    here, elsewhere = lambda_on(world, clock), lambda_on(world, clock)
    batch, sent_ms = one_batch_in_flight(here)
    real = here._ddb.put_item

    def throttled(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}},
                          "PutItem")

    here._ddb.put_item = throttled  # type: ignore[method-assign]
    with pytest.raises(Throttled):
        here.append("t", 0, batch)
    here._ddb.put_item = real  # type: ignore[method-assign]
    elsewhere.append("t", 0, make_batch([b"rival"]))
    assert elsewhere.append("t", 0, batch, since_ms=sent_ms).base_offset == 2
    answer = here.append("t", 0, batch, since_ms=sent_ms)
    assert (answer.base_offset, answer.duplicate) == (2, True)
    assert copies(here, "t", b"mine") == [2]


def test_no_write_starts_after_the_requests_deadline(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """A lost its key to a rival; by the time it could write again its deadline (when the
    client may retry) has passed: it stops, having written nothing."""
    first, rival = lambda_on(world, clock), lambda_on(world, clock)
    first.create_topic("t", 1)
    first.append("t", 0, make_batch([b"warm"]))
    deadline_ms = int(clock.now * 1000) + 10_000

    def rival_then_late() -> None:
        rival.append("t", 0, make_batch([b"rival"]))
        clock.advance(11)

    meanwhile(first, "put_item", rival_then_late)
    with pytest.raises(RequestTimedOut, match="nothing was written"):
        first.append("t", 0, make_batch([b"mine"], pid=5, seq=0), deadline_ms=deadline_ms)
    assert [v for _, v in read_all(first, "t")] == [b"warm", b"rival"]
    with pytest.raises(RequestTimedOut):  # already late: not even a first write
        first.append("t", 0, make_batch([b"mine"], pid=5, seq=0), deadline_ms=deadline_ms)
    calls = Calls(first)
    first.append("t", 0, make_batch([b"in time"]), deadline_ms=int(clock.now * 1000) + 1)
    assert calls.ops == {"PutItem": 1}  # a deadline costs no read


def _bulk_rivals(engine: Engine, topic: str, count: int, append_ms: int) -> None:
    """``count`` one-record batch items chained like real appends, put straight into
    in-process moto's table (a request each would take minutes)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    ref = engine.topics.get(topic).ref(0)
    data = make_batch([b"r"])
    for base in range(count):
        backend.put_item(engine.names.log_table, {
            **ref.batch_key(base), schema.A_COUNT: {"N": "1"},
            schema.A_SIZE: {"N": str(len(data))}, schema.A_APPEND_MAX: {"N": str(append_ms)},
            schema.A_TS_MAX: {"N": "1000"}, schema.A_BYTES: {"N": str((base + 1) * len(data))},
            schema.TTL: {"N": str(append_ms // 1000 + DAY)},
            schema.A_DATA: {"B": base.to_bytes(8, "big") + data[8:]}})


# ---- reads on base-offset keys ----------------------------------------------------------


def test_a_fetch_from_every_offset_inside_a_batch_finds_that_batch(engine: Engine) -> None:
    engine.create_topic("t", 1)
    sizes = [3, 1, 5, 2]
    for i, n in enumerate(sizes):
        engine.append("t", 0, make_batch(values(str(i), n)))
    for offset in range(sum(sizes)):
        first = decode_batch("t", 0, engine.fetch("t", 0, offset, max_records=1).batches[0])
        assert first[0].offset <= offset <= first[-1].offset


def test_an_idle_poll_reads_one_small_item_however_large_the_tail_is(engine: Engine) -> None:
    engine.create_topic("t", 1, {"inline.max.bytes": 358_400})
    engine.append("t", 0, make_batch([random.randbytes(300_000)]))  # a ~300 KB tail item
    topic_id = engine.topics.get("t").topic_id
    calls = Calls(engine)
    for _ in range(5):
        assert engine.fetch("t", 0, 1, boundary_of=topic_id).batches == []
    assert calls.ops == {"Query": 5} and calls.items_read == [1] * 5  # the partition item


# ---- delete, recreate, layout --------------------------------------------------------------


def test_no_write_into_a_deleted_incarnation_is_acknowledged(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    cached = engine_on(world, clock)
    cached.create_topic("t", 1)
    cached.append("t", 0, make_batch([b"old"]))  # its tail and metadata are now cached
    admin = engine_on(world, clock)
    admin.delete_topic("t")
    with pytest.raises(TopicNotFound):
        cached.append("t", 0, make_batch([b"into the void"]))
    admin.create_topic("t", 1)
    result = cached.append("t", 0, make_batch([b"new"]))  # lands in the new incarnation
    assert result.base_offset == 0
    assert read_all(admin, "t") == [(0, b"new")]
    clock.advance(3600)
    admin.purge_deleted()
    assert cached.append("t", 0, make_batch([b"more"])).base_offset == 1


def test_a_topic_of_another_layout_is_refused_by_name_and_version(engine: Engine) -> None:
    engine.create_topic("t", 1)
    engine._ddb.update_item(TableName=engine.names.topics_table, Key=schema.topic_key("t"),
                            UpdateExpression="SET #l = :one",
                            ExpressionAttributeNames={"#l": schema.A_LAYOUT},
                            ExpressionAttributeValues={":one": {"N": "1"}})
    with pytest.raises(UnsupportedLayout, match=r"'t' uses storage layout 1.*layout 2"):
        engine_on((engine._ddb, engine.blobs._s3), ManualClock(T0)).describe_topic("t")


def test_names_that_collide_after_dots_become_underscores_are_refused(engine: Engine) -> None:
    engine.create_topic("orders.v1", 1)
    with pytest.raises(InvalidTopicName, match=r"collides with existing topic 'orders\.v1'"):
        engine.create_topic("orders_v1", 1)
    assert engine.list_topics() == ["orders.v1"]
    engine.delete_topic("orders.v1")
    engine.create_topic("orders_v1", 1)  # free again once the other is gone


def test_trust_margin_is_minutes_not_hours() -> None:
    assert 60_000 <= TRUST_MARGIN_MS <= 600_000


def test_a_retry_behind_more_than_4_mib_of_appends_is_unknown_not_written(
        engine: Engine, clock: ManualClock) -> None:
    """A retry that says its first attempt was sent at ``since_ms`` looks back over what
    was appended since; past LOOKBACK_MAX_BYTES it cannot tell whether that attempt
    landed, so it answers AppendOutcomeUnknown and writes nothing (never a possible
    second copy)."""
    engine.create_topic("busy", 1)
    first_sent = int(clock.time() * 1000)
    for i in range(5):  # ~0.9 MB each (S3 pointers): 4.5 MB appended after the first send
        engine.append("busy", 0, make_batch([random.randbytes(900_000)], pid=50 + i))
    ours = make_batch([b"ours"], pid=7, seq=0)
    with pytest.raises(AppendOutcomeUnknown, match=r"more than 4194304 bytes"):
        engine.append("busy", 0, ours, since_ms=first_sent)
    assert engine.watermarks("busy", 0) == (0, 5)  # nothing written
    # once the rivals are older than the first send (and the clock margin), a retry
    # writes its batch once, and a retry of that finds it
    clock.advance(TRUST_MARGIN_MS / 1000 + 1)
    assert engine.append("busy", 0, ours, since_ms=int(clock.time() * 1000)).base_offset == 5
    assert engine.append("busy", 0, ours, since_ms=int(clock.time() * 1000)).duplicate


def test_the_topic_metadata_cache_runs_on_the_engines_clock(
        world: tuple[Any, Any], clock: ManualClock) -> None:
    """Cached for topics.CACHE_SECONDS of the engine's clock (a ManualClock here), then
    read again: another engine's config change shows then, not before."""
    reader, writer = engine_on(world, clock), engine_on(world, clock)
    writer.create_topic("cfg", 1)
    assert reader.topics.get("cfg").config["retention.ms"] == "604800000"
    writer.alter_topic_config("cfg", {"retention.ms": "1000"})
    time.sleep(TOPIC_CACHE_SECONDS + 0.2)  # the host's time passes; the engine's does not
    assert reader.topics.get("cfg").config["retention.ms"] == "604800000"
    clock.advance(TOPIC_CACHE_SECONDS)
    assert reader.topics.get("cfg").config["retention.ms"] == "1000"
