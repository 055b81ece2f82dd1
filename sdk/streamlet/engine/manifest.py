"""The segment manifest: one item per archived segment, beside the partition's batches.

Items live under the partition's key (``s/{last_offset:020}``), so the segment holding an
offset is one forward Query away, exactly like the hot batches (``b/...``). An item is
written in the same transaction that raises the partition's archive watermark: a reader
that sees the watermark sees the segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..clock import SYSTEM, Clock
from . import schema
from .aws import items, translated
from .segments import Segment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


def _segment(item: dict[str, Any]) -> Segment:
    return Segment(key=item[schema.A_KEY]["S"], base_offset=int(item[schema.A_BASE]["N"]),
                   last_offset=int(item[schema.A_LAST]["N"]),
                   size=int(item[schema.A_SEG_SIZE]["N"]),
                   entries=int(item[schema.A_INDEX_ENTRIES]["N"]),
                   max_timestamp=int(item[schema.A_MAX_TS]["N"]),
                   min_timestamp=int(item[schema.A_MIN_TS]["N"]),
                   skipped=tuple((int(r["L"][0]["N"]), int(r["L"][1]["N"]))
                                 for r in item.get(schema.A_SKIPPED, {}).get("L", [])))


class Manifest:
    """Reads and writes manifest items in the log table."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names,
                 clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._table = names.log_table
        self._clock = clock

    def put_action(self, ref: schema.PartitionRef, segment: Segment
                   ) -> TransactWriteItemTypeDef:
        """The TransactWriteItems action recording ``segment`` (fails if already there)."""
        item = {
            **ref.key(schema.segment_sk(segment.last_offset)),
            schema.A_KEY: {"S": segment.key},
            schema.A_BASE: {"N": str(segment.base_offset)},
            schema.A_LAST: {"N": str(segment.last_offset)},
            schema.A_SEG_SIZE: {"N": str(segment.size)},
            schema.A_INDEX_ENTRIES: {"N": str(segment.entries)},
            schema.A_MAX_TS: {"N": str(segment.max_timestamp)},
            schema.A_MIN_TS: {"N": str(segment.min_timestamp)},
            schema.A_CREATED: {"N": str(int(self._clock.time() * 1000))},
        }
        if segment.skipped:
            item[schema.A_SKIPPED] = {"L": [{"L": [{"N": str(base)}, {"N": str(end)}]}
                                            for base, end in segment.skipped]}
        return {"Put": {"TableName": self._table, "Item": item,
                        "ConditionExpression": "attribute_not_exists(#sk)",
                        "ExpressionAttributeNames": {"#sk": schema.SK}}}

    def containing(self, ref: schema.PartitionRef, offset: int, what: str) -> Segment | None:
        """The segment holding ``offset``, or None if no recorded segment does."""
        for segment in self.segments(ref, offset, what, page=1):
            return segment if segment.base_offset <= offset else None
        return None

    def segments(self, ref: schema.PartitionRef, first: int = 0, what: str = "",
                 page: int = 100) -> Iterator[Segment]:
        """Segments whose last offset is ``first`` or more, in offset order."""
        found = items(self._ddb.query, what or f"read the segment manifest of {ref.pk}",
                      TableName=self._table, ConsistentRead=True, Limit=page,
                      KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi",
                      ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                      ExpressionAttributeValues={
                          ":pk": {"S": ref.pk}, ":lo": {"S": schema.segment_sk(first)},
                          ":hi": {"S": schema.segment_sk(schema.MAX_OFFSET)}})
        return (_segment(item) for item in found)

    def delete(self, ref: schema.PartitionRef, segment: Segment) -> None:
        with translated(f"forget segment {segment.key}"):
            self._ddb.delete_item(TableName=self._table,
                                  Key=ref.key(schema.segment_sk(segment.last_offset)))
