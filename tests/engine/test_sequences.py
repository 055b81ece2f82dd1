"""Idempotent producers' epochs and sequences held to the log (``check_sequence``): what the
Kafka gateway asks for a batch its connection has not seen the producer's previous batch
of. The producer's state is its newest batches in the look-back window."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamlet.clock import ManualClock
from streamlet.engine import Engine, schema
from streamlet.engine.topics import TRUST_MARGIN_MS
from streamlet.errors import AppendOutcomeUnknown, OutOfOrderSequence, ProducerFenced, Throttled
from tests.batches import make_batch, values
from tests.engine import test_single_write as single

clock, world, engine = single.clock, single.world, single.engine  # the same fixtures
Calls = single.Calls
PID = 7


def _since(clock: ManualClock) -> int:
    """A retry's ``since_ms``: the gateway passes now minus its idempotence window."""
    return int(clock.time() * 1000) - 120_000


def _send(engine: Engine, clock: ManualClock, n: int, seq: int, epoch: int = 0,
          topic: str = "seq") -> Any:
    return engine.append(topic, 0, make_batch(values(f"e{epoch}s{seq}", n), pid=PID,
                                              epoch=epoch, seq=seq),
                         since_ms=_since(clock), check_sequence=True)


@pytest.fixture
def history(engine: Engine, clock: ManualClock) -> Engine:
    """Producer 7 wrote sequences 0-9 in two batches of 5, between other producers'."""
    engine.create_topic("seq", 1)
    engine.append("seq", 0, make_batch([b"other"], pid=99))
    assert _send(engine, clock, 5, 0).base_offset == 1
    engine.append("seq", 0, make_batch([b"plain"]))
    assert _send(engine, clock, 5, 5).base_offset == 7
    engine.append("seq", 0, make_batch([b"other"], pid=99, seq=1))
    return engine


def test_the_next_sequence_is_appended(history: Engine, clock: ManualClock) -> None:
    result = _send(history, clock, 3, 10)
    assert (result.base_offset, result.last_offset, result.duplicate) == (13, 15, False)


def test_a_repeat_of_one_of_the_last_batches_answers_its_offsets(
        history: Engine, clock: ManualClock) -> None:
    for seq, base in ((5, 7), (0, 1)):
        again = _send(history, clock, 5, seq)
        assert (again.base_offset, again.duplicate) == (base, True)
    assert history.watermarks("seq", 0) == (0, 13)


@pytest.mark.parametrize("seq", [11, 12, 3, 7, 2**31 - 1])
def test_a_sequence_out_of_order_is_refused_and_not_written(
        history: Engine, clock: ManualClock, seq: int) -> None:
    with pytest.raises(OutOfOrderSequence, match=rf"Producer 7 sent sequence {seq} to "
                                                 r"'seq' partition 0, expected 10"):
        _send(history, clock, 1, seq)
    assert history.watermarks("seq", 0) == (0, 13)


def test_an_older_epoch_is_fenced_and_a_new_one_starts_at_zero(
        history: Engine, clock: ManualClock) -> None:
    with pytest.raises(OutOfOrderSequence, match=r"sent sequence 10 .* expected 0"):
        _send(history, clock, 1, 10, epoch=1)  # a new epoch starts at sequence 0
    assert _send(history, clock, 2, 0, epoch=1).base_offset == 13
    with pytest.raises(ProducerFenced, match="Producer 7 epoch 0 is fenced on 'seq' "
                                             "partition 0: epoch 1 is current"):
        _send(history, clock, 1, 10, epoch=0)
    assert history.watermarks("seq", 0) == (0, 15)


def test_sequences_wrap_at_2_31(engine: Engine, clock: ManualClock) -> None:
    engine.create_topic("seq", 1)
    _send(engine, clock, 3, 2**31 - 3)
    assert _send(engine, clock, 2, 0).base_offset == 3  # the sequence after 2**31 - 1
    with pytest.raises(OutOfOrderSequence):
        _send(engine, clock, 1, 2**31 - 1)  # not a batch boundary of the last ones


def test_a_producer_with_nothing_in_the_window_starts_anywhere(
        history: Engine, clock: ManualClock) -> None:
    """As a broker takes any sequence once the producer's state expired."""
    with pytest.raises(OutOfOrderSequence):
        _send(history, clock, 1, 9_000)  # its batches are in the window
    clock.advance(120 + TRUST_MARGIN_MS / 1000 + 1)
    assert _send(history, clock, 1, 9_000).base_offset == 13
    assert _send(history, clock, 1, 9_001).base_offset == 14


def test_a_batch_older_than_the_producers_last_five_is_a_gap(
        engine: Engine, clock: ManualClock) -> None:
    engine.create_topic("seq", 1)
    for seq in range(7):
        _send(engine, clock, 1, seq)
    assert _send(engine, clock, 1, 2).duplicate  # the fifth newest
    with pytest.raises(OutOfOrderSequence, match=r"sent sequence 1 .* expected 7"):
        _send(engine, clock, 1, 1)  # the sixth newest: beyond what a producer resends


def test_without_check_sequence_a_gap_is_appended(
        history: Engine, clock: ManualClock) -> None:
    """The SDK's own producer (one batch in flight per partition) does not ask for it."""
    gap = make_batch([b"x"], pid=PID, seq=40)
    assert history.append("seq", 0, gap, since_ms=_since(clock)).base_offset == 13


def test_the_look_back_ends_at_the_producers_newest_batch(
        engine: Engine, clock: ManualClock) -> None:
    """A next batch costs the reads down to the producer's newest batch, not the window:
    4.5 MB appended by others before it do not make its outcome unknown."""
    engine.create_topic("busy", 1)
    for i in range(5):  # ~0.9 MB each, older than the producer's batch
        engine.append("busy", 0, make_batch([random.randbytes(900_000)], pid=50 + i))
    engine.append("busy", 0, make_batch([b"first"], pid=PID))  # no look-back asked
    for i in range(3):
        engine.append("busy", 0, make_batch([b"small"], pid=60 + i))
    calls = Calls(engine)
    assert _send(engine, clock, 1, 1, topic="busy").base_offset == 9
    assert sum(calls.items_read) <= 10, calls.items_read
    with pytest.raises(AppendOutcomeUnknown, match="more than 4194304 bytes"):
        # a producer unseen in 4 MiB of the window: its outcome cannot be known
        engine.append("busy", 0, make_batch([b"x"], pid=PID + 1, seq=3),
                      since_ms=_since(clock), check_sequence=True)


def _busy(engine: Engine, topic: str) -> None:
    """4.5 MB of other producers' batches in the window (S3 pointers, ~0.9 MB each)."""
    engine.create_topic(topic, 1)
    for i in range(5):
        engine.append(topic, 0, make_batch([random.randbytes(900_000)], pid=50 + i))


def _claims(engine: Engine, topic: str) -> list[dict[str, Any]]:
    meta = engine.topics.get(topic, fresh=True)
    return engine.log.query(meta, meta.ref(0), schema.CLAIM_PREFIX, schema.CLAIM_PREFIX + "~",
                            100)


def test_a_new_producer_on_a_busy_partition_is_not_refused(
        engine: Engine, clock: ManualClock) -> None:
    """Its first batch (sequence 0) cannot be settled by 4 MiB of look-back, but nobody
    claimed it: it is new. A resend that cannot be settled either finds the claim and
    searches from its mark: the original offsets, not a second copy."""
    _busy(engine, "busy")
    first = make_batch([b"hello"], pid=PID, epoch=3, seq=0)
    calls = Calls(engine)
    result = engine.append("busy", 0, first, since_ms=_since(clock), check_sequence=True)
    assert (result.base_offset, result.duplicate) == (5, False)
    assert calls.ops["UpdateItem"] == 1  # the claim
    assert [int(c[schema.A_MARK]["N"]) for c in _claims(engine, "busy")] == [5]
    for i in range(5):  # more than 4 MiB after it, too
        engine.append("busy", 0, make_batch([random.randbytes(900_000)], pid=60 + i))
    again = engine.append("busy", 0, first, since_ms=_since(clock), check_sequence=True)
    assert (again.base_offset, again.duplicate) == (5, True)
    assert engine.watermarks("busy", 0) == (0, 11)


def test_a_claimed_first_batch_that_never_landed_is_written_once(
        engine: Engine, clock: ManualClock) -> None:
    """An attempt that claimed its batch and failed before writing it: the retry searches
    from the claim's mark, finds nothing and writes it, once."""
    _busy(engine, "busy")
    first = make_batch([b"hello"], pid=PID, seq=0)
    original = engine.log._ddb.put_item
    engine.log._ddb.put_item = _failing  # type: ignore[method-assign]
    with pytest.raises(Throttled):
        engine.append("busy", 0, first, since_ms=_since(clock), check_sequence=True)
    engine.log._ddb.put_item = original  # type: ignore[method-assign]
    assert len(_claims(engine, "busy")) == 1 and engine.watermarks("busy", 0) == (0, 5)
    assert engine.append("busy", 0, first, since_ms=_since(clock),
                         check_sequence=True).base_offset == 5
    assert engine.append("busy", 0, first, since_ms=_since(clock),
                         check_sequence=True).duplicate
    assert engine.watermarks("busy", 0) == (0, 6)


def _failing(**_: Any) -> Any:
    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                      "PutItem")


def test_a_first_batch_settled_by_the_look_back_is_claimed_too(
        engine: Engine, clock: ManualClock) -> None:
    """So a later resend that cannot be settled (the partition got busy) finds it."""
    engine.create_topic("quiet", 1)
    first = make_batch([b"hello"], pid=PID, seq=0)
    assert engine.append("quiet", 0, first, since_ms=_since(clock),
                         check_sequence=True).base_offset == 0
    assert [int(c[schema.A_MARK]["N"]) for c in _claims(engine, "quiet")] == [0]
    for i in range(5):
        engine.append("quiet", 0, make_batch([random.randbytes(900_000)], pid=60 + i))
    assert engine.append("quiet", 0, first, since_ms=_since(clock),
                         check_sequence=True).duplicate
    assert engine.watermarks("quiet", 0) == (0, 6)
