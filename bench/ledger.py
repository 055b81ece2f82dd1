"""Every DynamoDB and S3 request an engine makes, priced the way AWS bills it.

A ``Ledger`` hooks the engine's two boto3 clients: ``before-parameter-build`` keeps a copy
of each request's parameters and ``after-call`` books the request with its response into
the current phase. Neither changes a request. What is booked:

- DynamoDB writes: ``write_units`` of the item, twice inside TransactWriteItems. A Put is
  sized as sent; an Update by the stored item, read back once per key through a separate,
  unhooked client; a Delete by the item as last written.
- DynamoDB reads: ``read_units`` of the items each request returns (strongly consistent
  or not as asked; twice for TransactGetItems).
- S3 requests by price tier: PUT/COPY, LIST, GET/HEAD; DeleteObjects is an HTTP POST and
  is booked at the PUT tier; DeleteObject is free.
- Storage: every item and object written while booking, from its creation to its
  deletion, or to an item's TTL (DynamoDB deletes expired items for free), on the
  injected clock; items count ``ITEM_OVERHEAD`` bytes more, as DynamoDB bills them.

Requests made while ``phase`` is None (setup, teardown) are not booked. A failed request
is recorded in ``errors`` and not booked: the scenarios here expect none.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamlet.engine.schema import PK, SK, TTL

from .billing import (
    GET_PRICE,
    ITEM_OVERHEAD,
    PUT_PRICE,
    RRU_PRICE,
    WRU_PRICE,
    item_size,
    read_units,
    write_units,
)

Lookup = Callable[[str, dict[str, Any]], dict[str, Any] | None]
"""(table, key) -> the stored item, read without being booked."""
FREE_DYNAMODB = frozenset({"DescribeTable", "ListTables", "DescribeTimeToLive"})
_PARAMS = "bench.ledger.params"


@dataclass
class Bill:
    """Billable requests of one phase."""

    wru: float = 0.0
    rru: float = 0.0
    s3_put: int = 0
    s3_post: int = 0
    s3_list: int = 0
    s3_get: int = 0
    get_bytes: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def usd(self) -> float:
        tier1 = self.s3_put + self.s3_post + self.s3_list
        return (self.wru * WRU_PRICE + self.rru * RRU_PRICE + tier1 * PUT_PRICE
                + self.s3_get * GET_PRICE)

    def __add__(self, other: Bill) -> Bill:
        return Bill(self.wru + other.wru, self.rru + other.rru, self.s3_put + other.s3_put,
                    self.s3_post + other.s3_post, self.s3_list + other.s3_list,
                    self.s3_get + other.s3_get, self.get_bytes + other.get_bytes,
                    self.requests + other.requests)


@dataclass
class _Stored:
    size: int
    since: float
    ttl: float | None


@dataclass
class Storage:
    """Byte-seconds held: each key from ``create`` to ``end`` (or its TTL)."""

    byte_seconds: float = 0.0
    live: dict[Any, _Stored] = field(default_factory=dict)

    def create(self, key: Any, size: int, now: float, ttl: float | None = None) -> None:
        self.end(key, now)  # an overwrite ends the previous version
        self.live[key] = _Stored(size, now, ttl)

    def end(self, key: Any, now: float) -> None:
        held = self.live.pop(key, None)
        if held is not None:
            until = now if held.ttl is None else min(now, held.ttl)
            self.byte_seconds += held.size * max(0.0, until - held.since)

    def close(self, now: float) -> None:
        """End everything still held: at its TTL if it has one, else at ``now``."""
        for key in list(self.live):
            ttl = self.live[key].ttl
            self.end(key, math.inf if ttl is not None else now)


class Ledger:
    """Books the requests of the clients it is attached to, phase by phase."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float]) -> None:
        self._lookup = lookup
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything booked; book nothing until a phase is set."""
        self.phase: str | None = None
        self.bills: dict[str, Bill] = {}
        self.dynamodb_storage = Storage()
        self.s3_storage = Storage()
        self.errors: list[str] = []
        self._sizes: dict[tuple[str, str, str], int] = {}

    def attach(self, dynamodb: Any, s3: Any) -> None:
        for client, service, book in ((dynamodb, "dynamodb", self._dynamodb),
                                      (s3, "s3", self._s3)):
            client.meta.events.register(f"before-parameter-build.{service}", _keep_params)
            client.meta.events.register(f"after-call.{service}", self._after(book))

    def _after(self, book: Callable[[str, dict[str, Any], dict[str, Any]], None]
               ) -> Callable[..., None]:
        def booked(http_response: Any, parsed: dict[str, Any], model: Any,
                   context: dict[str, Any], **_: Any) -> None:
            if self.phase is None:
                return
            if http_response.status_code >= 300:
                code = parsed.get("Error", {}).get("Code", http_response.status_code)
                self.errors.append(f"{self.phase}: {model.name} failed ({code})")
                return
            self.bills.setdefault(self.phase, Bill()).requests[model.name] += 1
            book(model.name, context[_PARAMS], parsed)

        return booked

    @property
    def _bill(self) -> Bill:
        return self.bills.setdefault(self.phase or "", Bill())

    # ---- DynamoDB -----------------------------------------------------------------------

    def _dynamodb(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        bill = self._bill
        if op == "TransactWriteItems":
            for action in params["TransactItems"]:
                (kind, body), = action.items()
                bill.wru += write_units(self._written(kind, body), transactional=True)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            bill.wru += write_units(self._written(op.removesuffix("Item"), params))
        elif op in ("GetItem", "Query", "Scan"):
            if "ProjectionExpression" in params:
                raise ValueError(f"{op} with a projection is billed on whole items: not modeled")
            found = parsed.get("Items", [parsed.get("Item", {})])
            bill.rru += read_units(sum(map(item_size, found)),
                                   consistent=bool(params.get("ConsistentRead")))
        elif op == "TransactGetItems":
            bill.rru += sum(read_units(item_size(r.get("Item", {})), transactional=True)
                            for r in parsed["Responses"])
        elif op not in FREE_DYNAMODB:
            raise ValueError(f"no billing rule for DynamoDB {op}")

    def _written(self, kind: str, body: dict[str, Any]) -> int:
        """Billed size of one write; records the item's storage."""
        table = body["TableName"]
        if kind == "Put":
            item = body["Item"]
            key, size = _key(table, item), item_size(item)
            ttl = float(item[TTL]["N"]) if TTL in item else None
            self.dynamodb_storage.create(key, size + ITEM_OVERHEAD, self._clock(), ttl)
            self._sizes[key] = size
            return size
        key = _key(table, body["Key"])
        if kind == "Delete":
            self.dynamodb_storage.end(key, self._clock())
            if key not in self._sizes:
                raise ValueError(f"DeleteItem of {key}: its size was never seen")
            return self._sizes.pop(key)
        if key not in self._sizes:
            self._sizes[key] = item_size(self._lookup(table, body["Key"]) or {})
        return self._sizes[key]

    # ---- S3 -----------------------------------------------------------------------------

    def _s3(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        bill, now = self._bill, self._clock()
        if op in ("PutObject", "CopyObject"):
            bill.s3_put += 1
            self.s3_storage.create(params["Key"], _body_size(params["Body"]), now)
        elif op in ("ListObjectsV2", "ListObjects"):
            bill.s3_list += 1
        elif op == "DeleteObjects":
            bill.s3_post += 1
            for obj in params["Delete"]["Objects"]:
                self.s3_storage.end(obj["Key"], now)
        elif op == "DeleteObject":
            self.s3_storage.end(params["Key"], now)
        elif op in ("GetObject", "HeadObject"):
            bill.s3_get += 1
            bill.get_bytes += int(parsed.get("ContentLength", 0))
        else:
            raise ValueError(f"no billing rule for S3 {op}")


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_PARAMS] = dict(params)


def _body_size(body: Any) -> int:
    """Length of a PutObject body: bytes, or the file-like object botocore made of them."""
    if isinstance(body, bytes | bytearray):
        return len(body)
    position = body.tell()
    size = int(body.seek(0, 2))
    body.seek(position)
    return size


def _key(table: str, attrs: dict[str, Any]) -> tuple[str, str, str]:
    return table, attrs[PK]["S"], attrs.get(SK, {}).get("S", "")
