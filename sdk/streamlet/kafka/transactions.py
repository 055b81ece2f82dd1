"""Transactional producers: InitProducerId with a transactional id, AddPartitionsToTxn,
AddOffsetsToTxn, TxnOffsetCommit and EndTxn (the transactional Produce is in :mod:`.data`).

Every gateway is every transactional id's coordinator (FindCoordinator with key type 1
names the gateway itself), and keeps nothing of a transaction in memory: the engine's
transaction records hold it (:mod:`streamlet.engine.kafka_txn`), so a producer whose
requests land on different gateways, or whose gateway restarts, commits all it sent.

- InitProducerId bumps the id's epoch (``TransactionStore.init``): older instances are
  fenced and the transaction they left open is aborted. With KIP-360's producer id and
  epoch (a running producer bumping its own epoch) it is refused as fenced unless they
  are still the id's current ones.
- AddPartitionsToTxn and AddOffsetsToTxn begin the transaction (Kafka begins it
  implicitly) or join the one open.
- TxnOffsetCommit checks the member's generation in the classic group (as a broker does)
  and keeps the offsets in the transaction's record; EndTxn(commit) writes them in the
  same DynamoDB transaction as the commit, conditioned on that generation again.
- EndTxn commits what the transaction's Produce requests staged, or aborts it.

Errors are Kafka's: a fenced producer gets PRODUCER_FENCED from the versions that know it
(INVALID_PRODUCER_EPOCH before; a Produce always gets INVALID_PRODUCER_EPOCH, as from a
broker), a transaction the log aborted (timed out, or its group's generation moved)
TRANSACTION_ABORTABLE, a contended id CONCURRENT_TRANSACTIONS (retriable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.kafka_groups import ClassicTxnOffsets
from ..errors import (
    AppendConflict,
    CommitFailed,
    InvalidTxnState,
    ProducerFenced,
    StreamletError,
    TransactionAborted,
)
from ..records import ProducerIdentity, TopicPartition
from . import auth, codes
from .coordinator import COMPLETING
from .protocol import ApiKey, response_class

if TYPE_CHECKING:
    from .auth import Session
    from .host import Host
    from .protocol import Request

T = TypeVar("T")

FENCED_FROM = {ApiKey.InitProducerId: 4, ApiKey.AddPartitionsToTxn: 2,
               ApiKey.AddOffsetsToTxn: 2, ApiKey.EndTxn: 2, ApiKey.TxnOffsetCommit: 3}
"""The first version of each API whose answers may carry PRODUCER_FENCED (KIP-588)."""


def txn_code(error: StreamletError, api_key: int, version: int) -> int:
    """The Kafka error code a transactional client acts on for ``error``."""
    if isinstance(error, ProducerFenced):
        return codes.PRODUCER_FENCED if version >= FENCED_FROM.get(api_key, 99) \
            else codes.INVALID_PRODUCER_EPOCH
    if isinstance(error, TransactionAborted | CommitFailed):
        return codes.TRANSACTION_ABORTABLE
    if isinstance(error, InvalidTxnState):
        return codes.INVALID_TXN_STATE
    if isinstance(error, AppendConflict):
        return codes.CONCURRENT_TRANSACTIONS
    return codes.code_for(error)


class TxnApis:
    """Handlers of the transaction coordinator's APIs."""

    def __init__(self, gateway: Host) -> None:
        self.gw = gateway
        self.kafka = gateway.engine.kafka_transactions

    def handlers(self) -> dict[int, Any]:
        return {ApiKey.AddPartitionsToTxn: self.add_partitions,
                ApiKey.AddOffsetsToTxn: self.add_offsets,
                ApiKey.TxnOffsetCommit: self.offset_commit, ApiKey.EndTxn: self.end}

    def allowed(self, session: Session, transactional_id: str) -> bool:
        return self.gw.auth.allows(session, *auth.transaction_route(transactional_id))

    async def _run(self, request: Request, fn: Callable[..., T], *args: Any
                   ) -> tuple[int, T | None]:
        """(error code, result) of an engine call on the gateway's pool."""
        try:
            return codes.NONE, await self.gw.call(fn, *args)
        except StreamletError as error:
            return txn_code(error, request.api_key, request.api_version), None

    # ---- InitProducerId -----------------------------------------------------------------

    async def init_producer_id(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.InitProducerId, request.api_version)

        def answer(code: int, pid: int = -1, epoch: int = -1) -> Any:
            return cls(throttle_time_ms=0, error_code=code, producer_id=pid,
                       producer_epoch=epoch)

        if not self.allowed(session, body.transactional_id):
            return answer(codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        if not 1000 <= body.transaction_timeout_ms <= 900_000:
            return answer(codes.INVALID_TRANSACTION_TIMEOUT)
        held = getattr(body, "producer_id", -1)
        expected = (held, body.producer_epoch) if held >= 0 else None
        code, who = await self._run(request, self.gw.engine.transactions.init,
                                    body.transactional_id, body.transaction_timeout_ms,
                                    expected)
        if who is None:
            return answer(code)
        return answer(codes.NONE, who.producer_id, who.epoch)

    # ---- AddPartitionsToTxn / AddOffsetsToTxn -------------------------------------------

    async def add_partitions(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.AddPartitionsToTxn, request.api_version)
        topic_cls = cls.AddPartitionsToTxnTopicResult
        part_cls = topic_cls.AddPartitionsToTxnPartitionResult
        tid = body.v3_and_below_transactional_id
        wanted = [(t.name, list(t.partitions)) for t in body.v3_and_below_topics]
        code = codes.NONE
        if not self.allowed(session, tid):
            code = codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        elif any(not self.gw.auth.allows(session, *auth.produce_route(t, p))
                 for t, parts in wanted for p in parts):
            code = codes.TOPIC_AUTHORIZATION_FAILED
        else:
            code = await self._partitions_exist(wanted)
        if code == codes.NONE:
            who = ProducerIdentity(tid, body.v3_and_below_producer_id,
                                   body.v3_and_below_producer_epoch)
            code, _ = await self._run(request, self.kafka.begin, who)
        return cls(throttle_time_ms=0, error_code=codes.NONE, results_by_transaction=[],
                   results_by_topic_v3_and_below=[topic_cls(name=t, results_by_partition=[
                       part_cls(partition_index=p, partition_error_code=code) for p in parts])
                       for t, parts in wanted])

    async def _partitions_exist(self, wanted: list[tuple[str, list[int]]]) -> int:
        for topic, partitions in wanted:
            try:
                desc = await self.gw.call(self.gw.engine.topic_metadata, topic)
            except StreamletError as error:
                return codes.code_for(error)
            if any(not 0 <= p < desc.partitions for p in partitions):
                return codes.UNKNOWN_TOPIC_OR_PARTITION
        return codes.NONE

    async def add_offsets(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.AddOffsetsToTxn, request.api_version)
        if not self.allowed(session, body.transactional_id):
            code = codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        elif not self.gw.auth.allows(session, *auth.group_route(body.group_id)):
            code = codes.GROUP_AUTHORIZATION_FAILED
        else:
            who = ProducerIdentity(body.transactional_id, body.producer_id,
                                   body.producer_epoch)
            code, _ = await self._run(request, self.kafka.begin, who)
        return cls(throttle_time_ms=0, error_code=code)

    # ---- TxnOffsetCommit ----------------------------------------------------------------

    async def offset_commit(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.TxnOffsetCommit, request.api_version)
        topic_cls = cls.TxnOffsetCommitResponseTopic
        code = await self._offset_commit(session, request)
        return cls(throttle_time_ms=0, topics=[topic_cls(name=t.name, partitions=[
            topic_cls.TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                                       error_code=code)
            for p in t.partitions]) for t in body.topics])

    async def _offset_commit(self, session: Session, request: Request) -> int:
        body = request.body
        if not self.allowed(session, body.transactional_id):
            return codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        if not self.gw.auth.allows(session, *auth.group_route(body.group_id)):
            return codes.GROUP_AUTHORIZATION_FAILED
        if any(not self.gw.auth.allows(session, *auth.read_route(t.name, p.partition_index))
               for t in body.topics for p in t.partitions):
            return codes.TOPIC_AUTHORIZATION_FAILED
        generation = getattr(body, "generation_id", -1)
        member_id = getattr(body, "member_id", "") or ""
        code = await self._member_check(body.group_id, generation, member_id)
        if code != codes.NONE:
            return code
        sent = ClassicTxnOffsets(body.group_id, generation, member_id, {
            TopicPartition(t.name, p.partition_index):
                (p.committed_offset, p.committed_metadata or "")
            for t in body.topics for p in t.partitions})
        who = ProducerIdentity(body.transactional_id, body.producer_id, body.producer_epoch)
        code, number = await self._run(request, self.kafka.current, who)
        if number is None:
            return code
        code, _ = await self._run(request, self.kafka.stage_offsets, who, number, sent)
        return code

    async def _member_check(self, group_id: str, generation: int, member_id: str) -> int:
        """TxnOffsetCommit v3's fencing, as a broker checks it (EndTxn checks it again)."""
        group = await self.gw.call(self.gw.engine.kafka_groups.load, group_id)
        if generation < 0 and not member_id:  # v0-2, or a producer without a member
            if group is not None and group.members:
                return codes.UNKNOWN_MEMBER_ID
            snapshot = await self.gw.call(self.gw.engine.groups.snapshot, group_id)
            return codes.INCONSISTENT_GROUP_PROTOCOL if snapshot.members else codes.NONE
        if group is None or member_id not in group.members:
            return codes.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return codes.ILLEGAL_GENERATION
        return codes.REBALANCE_IN_PROGRESS if group.state == COMPLETING else codes.NONE

    # ---- EndTxn -------------------------------------------------------------------------

    async def end(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.EndTxn, request.api_version)
        if not self.allowed(session, body.transactional_id):
            code = codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        else:
            who = ProducerIdentity(body.transactional_id, body.producer_id,
                                   body.producer_epoch)
            code, _ = await self._run(request, self.kafka.end, who, bool(body.committed))
        return cls(throttle_time_ms=0, error_code=code, producer_id=-1, producer_epoch=-1)


__all__ = ["TxnApis", "txn_code"]
