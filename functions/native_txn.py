"""Native transaction routes: the SDK's transactional producer over HTTP.

``POST /v1/transactions/{id}/init`` (fence older instances: producer id and new epoch),
``.../begin`` (the next transaction's number), ``.../{number}/commit`` (the batches it
appended and the offsets sent with it, in one DynamoDB transaction; safe to repeat from
any process) and ``.../{number}/abort``; transactional batches go through the batch
append route with ``transactional_id`` and ``transaction`` in the query
(:mod:`functions.native`). ``GET /v1/transactions`` lists open transactions (admin).

API Gateway checks the transactional id in the path against the caller's produce grant.
A commit's body names topics (each must be producible by the caller) and, with offsets,
a group and its partitions (the caller must be able to commit in that group and read
those topics); lease commits go through the group store bound to the caller, as the
group routes do. Nothing is written before every check passed.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field, StrictInt, StrictStr

from streamlet import wire
from streamlet.engine.grants import group_commit_route, produce_route
from streamlet.groups.leases import validate_group
from streamlet.records import ProducerIdentity, TopicPartition, TxnOffsets
from streamlet.topicconfig import validate_topic_name
from streamlet.txn import MAX_BATCHES, TIMEOUT_DEFAULT_MS

from ._access import Access, caller_access
from ._runtime import engine
from ._shared import groups, new_router, unquoted
from .models import INT64_MAX, Offset, TopicPartitionRef

router = new_router()
admin_router = new_router()
TXN = "/v1/transactions/<transactional_id>"
Counter = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
Epoch = Annotated[StrictInt, Field(ge=0, le=32767)]


class TxnInitBody(BaseModel):
    timeout_ms: StrictInt = TIMEOUT_DEFAULT_MS
    """1,000 to 900,000 (checked by the engine: 400 with the bounds otherwise)."""


class TxnProducerBody(BaseModel):
    """The producer id and epoch ``init`` returned."""

    producer_id: Counter
    epoch: Epoch


class TxnBatches(TopicPartitionRef):
    base_offsets: list[Offset] = Field(max_length=MAX_BATCHES)


class TxnOffsetEntry(TopicPartitionRef):
    lease_epoch: Counter
    offset: Offset
    metadata: Annotated[StrictStr, Field(max_length=4096)] = ""


class TxnOffsetsBody(BaseModel):
    group_id: Annotated[StrictStr, Field(min_length=1, max_length=249)]
    member_id: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    partitions: list[TxnOffsetEntry] = Field(max_length=1000)


class TxnCommitBody(TxnProducerBody):
    batches: list[TxnBatches] = Field(max_length=MAX_BATCHES)
    offsets: TxnOffsetsBody | None = None


def _who(transactional_id: str, body: TxnProducerBody) -> ProducerIdentity:
    return ProducerIdentity(unquoted(transactional_id), body.producer_id, body.epoch)


def _access() -> Access:
    return caller_access(router.current_event)


@router.post(f"{TXN}/init")
def init(transactional_id: str, body: TxnInitBody) -> dict[str, Any]:
    """Fence every older instance of the id; its producer id and new epoch."""
    who = engine().init_transactions(unquoted(transactional_id), body.timeout_ms)
    return wire.identity_json(who)


@router.post(f"{TXN}/begin")
def begin(transactional_id: str, body: TxnProducerBody) -> dict[str, int]:
    """Open the id's next transaction: ``{"number": n}``."""
    return {"number": engine().begin_transaction(_who(transactional_id, body))}


@router.post(f"{TXN}/<number>/commit")
def commit(transactional_id: str, number: int, body: TxnCommitBody) -> dict[str, Any]:
    """Make the transaction's batches and offsets visible at once (repeatable)."""
    access = _access()
    batches: dict[tuple[str, int], list[int]] = {}
    for entry in body.batches:
        topic = validate_topic_name(entry.topic)
        access.check_route(*produce_route(topic, entry.partition),
                           f"Topic '{topic}' (partition {entry.partition})")
        batches.setdefault((topic, entry.partition), []).extend(entry.base_offsets)
    offsets = None if body.offsets is None else _offsets(access, body.offsets)
    info = engine().commit_transaction(_who(transactional_id, body), number, batches, offsets,
                                       groups(access) if offsets is not None else None)
    return wire.transaction_json(info)


def _offsets(access: Access, body: TxnOffsetsBody) -> TxnOffsets:
    group = validate_group(body.group_id)
    access.check_route(*group_commit_route(group), f"Group '{group}'")
    offsets = {}
    for entry in body.partitions:
        topic = validate_topic_name(entry.topic)
        access.check_read(topic, entry.partition)
        offsets[TopicPartition(topic, entry.partition)] = (entry.lease_epoch, entry.offset,
                                                           entry.metadata)
    return TxnOffsets(group, body.member_id, offsets)


@router.post(f"{TXN}/<number>/abort")
def abort(transactional_id: str, number: int, body: TxnProducerBody) -> dict[str, Any]:
    """None of the transaction becomes visible (a no-op if already aborted)."""
    return wire.transaction_json(engine().abort_transaction(_who(transactional_id, body),
                                                            number))


@admin_router.get("/v1/transactions")
def list_transactions(include_ended: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """``{"data": [...]}``: open transactions (and ended ones still kept)."""
    return {"data": [wire.transaction_json(t)
                     for t in engine().list_transactions(include_ended)]}
