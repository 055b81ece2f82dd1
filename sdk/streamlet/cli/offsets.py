"""Where ``streamlet consume`` starts (kcat's ``-o``) and when ``-e`` stops it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..admin import Admin
from ..consumer import Consumer
from ..errors import OffsetOutOfRange, PartitionNotFound
from ..records import PartitionInfo, TopicPartition
from .common import CliError

Kind = Literal["beginning", "end", "absolute", "relative", "timestamp"]
OFFSET_HELP = ("beginning | end | N (absolute) | -N (N records before the end of each "
               "partition) | @TIMESTAMP_MS (first record at or after that time)")


@dataclass(frozen=True)
class OffsetSpec:
    """A parsed ``--offset``."""

    kind: Kind
    value: int = 0


def parse_offset(text: str) -> OffsetSpec:
    """``beginning``, ``end``, ``N``, ``-N``, ``@ts`` or ``s@ts`` (kcat's spellings).

    Example:
        >>> parse_offset("-10")
        OffsetSpec(kind='relative', value=10)
    """
    word = text.strip().lower()
    if word in ("beginning", "earliest", "oldest"):
        return OffsetSpec("beginning")
    if word in ("end", "latest", "newest"):
        return OffsetSpec("end")
    if word.startswith(("@", "s@")):
        return OffsetSpec("timestamp", _non_negative(word.partition("@")[2], text))
    if word.startswith("-"):
        return OffsetSpec("relative", _non_negative(word[1:], text))
    return OffsetSpec("absolute", _non_negative(word, text))


def _non_negative(digits: str, text: str) -> int:
    if not digits.isdigit():
        raise CliError(f"Invalid --offset {text!r}: expected {OFFSET_HELP}.")
    return int(digits)


def partitions_of(admin: Admin, topic: str, partition: int | None) -> list[PartitionInfo]:
    """Watermarks of every partition of ``topic``, or of the one asked for."""
    description = admin.describe_topic(topic)
    if partition is None:
        return description.partition_info
    chosen = [i for i in description.partition_info if i.partition == partition]
    if not chosen:
        raise PartitionNotFound(topic, partition, description.partitions)
    return chosen


def start_offsets(admin: Admin, topic: str, infos: list[PartitionInfo],
                  spec: OffsetSpec) -> dict[TopicPartition, int]:
    """The offset each partition starts at; an absolute offset outside a log is an error."""
    tps = {TopicPartition(topic, info.partition): info for info in infos}
    if spec.kind != "timestamp":
        return {tp: _resolve(spec, tp, info) for tp, info in tps.items()}
    found = admin.offsets_for_times(dict.fromkeys(tps, spec.value))
    starts = {}
    for tp, info in tps.items():
        offset = found.get(tp)
        starts[tp] = info.high if offset is None else offset  # nothing that late: the end
    return starts


def _resolve(spec: OffsetSpec, tp: TopicPartition, info: PartitionInfo) -> int:
    if spec.kind == "beginning":
        return info.low
    if spec.kind == "end":
        return info.high
    if spec.kind == "relative":
        return max(info.low, info.high - spec.value)
    if not info.low <= spec.value <= info.high:
        raise OffsetOutOfRange(tp.topic, tp.partition, spec.value, info.low, info.high)
    return spec.value


class EndTracker:
    """kcat's ``-e``: done once every partition's position has reached its high watermark.

    The watermark is re-read when a partition catches up with the last one seen, so records
    written meanwhile are read too; a partition that reached its end stays done.
    """

    def __init__(self, admin: Admin, highs: dict[TopicPartition, int]) -> None:
        self._admin = admin
        self._highs = dict(highs)
        self._done: set[TopicPartition] = set()

    def reached(self, consumer: Consumer) -> bool:
        for tp, high in self._highs.items():
            if tp in self._done or consumer.position(tp) < high:
                continue
            self._highs[tp] = self._admin.watermarks(tp.topic, tp.partition)[1]
            if consumer.position(tp) >= self._highs[tp]:
                self._done.add(tp)
        return len(self._done) == len(self._highs)
