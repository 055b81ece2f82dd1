"""The idempotent-producer window: duplicates, fencing, ordering."""

from __future__ import annotations

import pytest

from streamlet.codec import BatchHeader
from streamlet.engine.producers import (
    BATCHES_TO_RETAIN,
    advance,
    check_sequence,
    find_duplicate,
)
from streamlet.errors import OutOfOrderSequence, ProducerFenced


def header(seq: int, count: int = 2, epoch: int = 0, pid: int = 7) -> BatchHeader:
    return BatchHeader(0, 100, 2, 0, 0, count - 1, 0, 0, pid, epoch, seq, count)


def test_unknown_producer_starts_anywhere() -> None:
    check_sequence(None, header(40), "t", 0)
    assert find_duplicate(None, header(40)) is None


def test_next_sequence_is_accepted_and_remembered() -> None:
    state = advance(None, header(0), base_offset=10, timestamp=-1)
    check_sequence(state, header(2), "t", 0)
    dup = find_duplicate(state, header(0))
    assert dup is not None and (dup.base_offset, dup.last_offset) == (10, 11)


def test_gap_or_repeat_is_out_of_order() -> None:
    state = advance(None, header(0), 0, -1)
    with pytest.raises(OutOfOrderSequence, match="expected 2"):
        check_sequence(state, header(5), "t", 3)


def test_older_epoch_is_fenced_newer_epoch_restarts_at_zero() -> None:
    state = advance(None, header(0, epoch=3), 0, -1)
    with pytest.raises(ProducerFenced, match="epoch 2 is fenced"):
        check_sequence(state, header(2, epoch=2), "t", 0)
    with pytest.raises(OutOfOrderSequence):
        check_sequence(state, header(2, epoch=4), "t", 0)
    check_sequence(state, header(0, epoch=4), "t", 0)
    assert advance(state, header(0, epoch=4), 5, -1).batches[0].base_offset == 5


def test_only_the_last_five_batches_are_kept() -> None:
    state = None
    for i in range(8):
        state = advance(state, header(2 * i), base_offset=2 * i, timestamp=-1)
    assert state is not None and len(state.batches) == BATCHES_TO_RETAIN
    assert find_duplicate(state, header(0)) is None
    assert find_duplicate(state, header(14)) is not None


def test_sequence_wraps_at_int32_max() -> None:
    state = advance(None, header(2**31 - 2, count=2), 0, -1)
    check_sequence(state, header(0), "t", 0)
