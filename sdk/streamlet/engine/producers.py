"""Idempotent producer state per partition: the epoch and the last 5 batches (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..codec import BatchHeader, increment_sequence
from ..errors import OutOfOrderSequence, ProducerFenced

BATCHES_TO_RETAIN = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One retained batch: its sequence range and where it was written."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int
    timestamp: int

    def as_attribute(self) -> dict[str, Any]:
        values = (self.first_seq, self.last_seq, self.base_offset, self.last_offset,
                  self.timestamp)
        return {"L": [{"N": str(v)} for v in values]}


@dataclass(frozen=True)
class ProducerState:
    """What a partition remembers about one producer id."""

    epoch: int
    batches: list[BatchEntry] = field(default_factory=list)

    @classmethod
    def from_item(cls, item: dict[str, Any], epoch_attr: str, batches_attr: str
                  ) -> ProducerState:
        batches = [BatchEntry(*(int(v["N"]) for v in b["L"])) for b in item[batches_attr]["L"]]
        return cls(int(item[epoch_attr]["N"]), batches)

    def next_sequence(self) -> int | None:
        return increment_sequence(self.batches[-1].last_seq, 1) if self.batches else None


def find_duplicate(state: ProducerState | None, header: BatchHeader) -> BatchEntry | None:
    """The retained entry this batch repeats, if it is a retry of a written batch."""
    if state is None or state.epoch != header.producer_epoch:
        return None
    last_seq = increment_sequence(header.base_sequence, header.record_count - 1)
    for entry in state.batches:
        if entry.first_seq == header.base_sequence and entry.last_seq == last_seq:
            return entry
    return None


def check_sequence(state: ProducerState | None, header: BatchHeader, topic: str,
                   partition: int) -> None:
    """Raise ProducerFenced or OutOfOrderSequence unless the batch comes next."""
    pid, epoch, seq = header.producer_id, header.producer_epoch, header.base_sequence
    if state is None:
        return  # unknown (or expired) producer: its first batch here starts anywhere
    if epoch < state.epoch:
        raise ProducerFenced(topic, partition, pid, epoch, state.epoch)
    expected = 0 if epoch > state.epoch else state.next_sequence()
    if expected is not None and seq != expected:
        raise OutOfOrderSequence(topic, partition, pid, seq, expected)


def advance(state: ProducerState | None, header: BatchHeader, base_offset: int,
            timestamp: int) -> ProducerState:
    """The state after writing ``header``'s batch at ``base_offset``."""
    entry = BatchEntry(header.base_sequence,
                       increment_sequence(header.base_sequence, header.record_count - 1),
                       base_offset, base_offset + header.record_count - 1, timestamp)
    kept = state.batches if state and state.epoch == header.producer_epoch else []
    return ProducerState(header.producer_epoch, [*kept, entry][-BATCHES_TO_RETAIN:])
