"""DynamoDB item sizes and write units as DynamoDB bills them, plus a request recorder.

Item size = sum over attributes of (UTF-8 length of the name + size of the value):
strings are their UTF-8 bytes, binary its raw bytes, numbers ``ceil(significant
digits / 2) + 1`` bytes (AWS documents this as an approximation), booleans and nulls
1 byte, lists and maps 3 bytes plus 1 byte per element (plus map key names). A write
costs one unit per started KB (1,024 bytes) of item, at least one; inside
TransactWriteItems every unit counts twice. A read costs one unit per started 4 KB of
the items it returns (a Query sums them first), at least one, if strongly consistent;
half that if eventually consistent; twice that inside TransactGetItems.

Prices are us-east-1 on-demand list prices (DynamoDB Standard table class, S3 Standard).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KB = 1024
WRU_PRICE = 0.625 / 1_000_000  # $ per write request unit, on-demand, us-east-1
PUT_PRICE = 0.005 / 1000  # $ per S3 PUT
PUT_IN_WRU = PUT_PRICE / WRU_PRICE  # 8.0
RRU_PRICE = 0.125 / 1_000_000  # $ per read request unit, on-demand
GET_PRICE = 0.0004 / 1000  # $ per S3 GET (ranged or not) or HEAD
DYNAMODB_GB_MONTH = 0.25  # $ per GB-month of table storage (items + 100 B each)
S3_GB_MONTH = 0.023  # $ per GB-month, S3 Standard, first 50 TB
ITEM_OVERHEAD = 100  # bytes of storage DynamoDB adds to every item
GB = 1024**3
HOURS_PER_MONTH = 730


def number_size(text: str) -> int:
    """Approximate stored size of a DynamoDB number: 1 byte per 2 significant digits + 1."""
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Size of one typed attribute value ({"S": ...}, {"B": ...}, {"N": ...}, ...)."""
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        return number_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    if kind in ("SS", "BS"):
        return sum(len(v.encode()) if kind == "SS" else len(v) for v in raw)
    if kind == "NS":
        return sum(number_size(v) for v in raw)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def write_units(size: int, transactional: bool = False) -> int:
    units = max(1, math.ceil(size / KB))
    return 2 * units if transactional else units


def read_units(size: int, transactional: bool = False, consistent: bool = True) -> float:
    """Units for a read returning ``size`` bytes of items (a Query's items summed)."""
    units = max(1, math.ceil(size / (4 * KB)))
    return float(2 * units if transactional else units if consistent else units / 2)


def gb_months(byte_seconds: float) -> float:
    """Storage of ``byte_seconds`` (bytes x seconds held) in GB-months."""
    return byte_seconds / GB / (HOURS_PER_MONTH * 3600)


@dataclass
class Recorder:
    """Records request parameters of chosen operations; never changes a request."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def attach(self, client: Any, service: str, *operations: str) -> None:
        for op in operations:
            self.calls.setdefault(op, [])
            client.meta.events.register(f"before-parameter-build.{service}.{op}",
                                        self._handler(op))

    def _handler(self, op: str) -> Any:
        def record(params: dict[str, Any], **_: Any) -> None:
            self.calls[op].append(dict(params))

        return record

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()
