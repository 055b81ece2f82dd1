"""The data plane: Metadata, Produce, Fetch, ListOffsets and InitProducerId.

Produce hands each partition's RecordBatch v2 to ``Engine.append`` as it came (the engine
validates it as a broker does and patches the base offset in); Fetch returns the stored
batches as they are. Nothing is re-encoded, so the gateway's CPU per byte stays small.

**Idempotent producers.** The engine keeps no producer-state item (see
:mod:`streamlet.engine.log`): a producer's state is its newest batches in the log, and
each connection remembers what it appended. A client sends a connection's requests in
order, the gateway answers them in order, and a Kafka client produces through one
connection to a broker at a time (it opens the next when that one broke), so per
connection:

- it remembers, per (producer id, partition), the last 5 batches it appended (epoch,
  base sequence, record count, offsets), as a broker does;
- a batch whose sequence is one of those is a duplicate: its original offsets are
  answered and nothing is appended;
- a batch whose epoch is older than the newest remembered is refused
  (INVALID_PRODUCER_EPOCH): epochs only grow;
- a batch whose sequence follows the last one remembered is new: appended as is;
- any other idempotent batch (the first this connection sees from that producer on that
  partition, a new epoch, one after a gap, or one after a batch the log answered as a
  duplicate: the producer reconnected, maybe to another gateway, and is resending what
  may have landed) is appended with ``since_ms`` = now
  minus ``idempotence_window_ms`` (the producer's delivery timeout, 120 s by default) and
  ``check_sequence``: the engine looks back over what the partition took in that window,
  newest first, and answers the offsets of a batch with the same producer id, epoch and
  base sequence instead of writing a second copy; it stops at the producer's newest batch
  when the sequence follows it, and refuses an older epoch (INVALID_PRODUCER_EPOCH) or a
  sequence that neither repeats one of the producer's last 5 batches nor follows the
  newest (OUT_OF_ORDER_SEQUENCE_NUMBER), nothing written. A producer with no batch in the
  window may start at any sequence (a broker's producer state expired). The look-back
  reads at most 4 MiB before it meets the producer; past that the engine refuses with
  ``AppendOutcomeUnknown`` (answered UNKNOWN_SERVER_ERROR), never a duplicate, except for
  the first batch of a producer's epoch, which the engine claims before writing it and
  so can always judge.

So a retry is never written twice and a gap is never written, whichever gateway serves
it; the cost is one look-back per producer and partition per connection, not per batch.

**Transactional producers** (a Produce naming a transactional id): each batch goes the
same idempotent way into the transaction open for its producer id and epoch, and is then
staged in that transaction's record for EndTxn (:mod:`.transactions`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..codec import HEADER, HEADER_SIZE, increment_sequence
from ..engine.log import SEQUENCE_MEMORY
from ..errors import OffsetOutOfRange, ProducerFenced, StreamletError
from ..records import AppendResult, FetchResult, ProducerIdentity, TopicDescription
from ..validation import decode_records
from ..wire import APPEND_DEADLINE_MS, CLUSTER_ID
from . import auth, codes
from .protocol import ApiKey, response_class
from .transactions import TxnApis, txn_code

if TYPE_CHECKING:
    from .auth import Session
    from .host import Host
    from .protocol import Request

PRODUCER_MEMORY = 10_000
"""(producer id, partition) pairs remembered per connection, least recently used out."""
POLL_MIN_S, POLL_MAX_S = 0.01, 0.25
"""A long-polling fetch reads again after a pause doubling between these (and at once
when this gateway appends to one of its partitions)."""
ISOLATION = {0: "read_uncommitted", 1: "read_committed"}
SKIP_ROUNDS = 4
"""Further reads of one partition in one Fetch past runs of aborted batches."""
MIN_WRITE_WINDOW_MS = 1_000
FETCH_BYTES_UNSET = 50 * 1024 * 1024
"""A Fetch's max_bytes when it sets none (the consumers' fetch.max.bytes default)."""


def topic_uuid(topic_id: str) -> uuid.UUID:
    """The Kafka topic id of a Streamlet topic incarnation (its id is a UUID's hex)."""
    try:
        return uuid.UUID(hex=topic_id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"streamlet:{topic_id}")


@dataclass(frozen=True, slots=True)
class _Appended:
    epoch: int
    sequence: int
    count: int
    result: AppendResult


class ProducerMemory:
    """The last batches appended per (producer id, topic, partition) on one connection."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[int, str, int], deque[_Appended]] = OrderedDict()

    def classify(self, key: tuple[int, str, int], epoch: int, sequence: int
                 ) -> AppendResult | bool:
        """The original result of a duplicate, True for the expected next batch, False
        for a batch the log must judge (one this connection did not see may have landed
        through another); ProducerFenced for an epoch older than one it appended."""
        seen = self._seen.get(key)
        if not seen:
            return False
        for batch in seen:
            if batch.epoch == epoch and batch.sequence == sequence:
                return batch.result
        last = seen[-1]
        if epoch < last.epoch:
            raise ProducerFenced(key[1], key[2], key[0], epoch, last.epoch)
        return last.epoch == epoch and sequence == increment_sequence(last.sequence,
                                                                      last.count)

    def forget(self, key: tuple[int, str, int]) -> None:
        self._seen.pop(key, None)

    def record(self, key: tuple[int, str, int], batch: _Appended) -> None:
        seen = self._seen.setdefault(key, deque(maxlen=SEQUENCE_MEMORY))
        if seen and seen[-1].epoch != batch.epoch:
            seen.clear()
        seen.append(batch)
        self._seen.move_to_end(key)
        while len(self._seen) > PRODUCER_MEMORY:
            self._seen.popitem(last=False)


class DataApis:
    """Handlers of the data-plane APIs."""

    def __init__(self, gateway: Host, idempotence_window_ms: int) -> None:
        self.gw = gateway
        self.window_ms = idempotence_window_ms
        self.txn = TxnApis(gateway)
        self._appended: dict[tuple[str, int], asyncio.Event] = {}

    def handlers(self) -> dict[int, Any]:
        return {ApiKey.Metadata: self.metadata, ApiKey.Produce: self.produce,
                ApiKey.Fetch: self.fetch, ApiKey.ListOffsets: self.list_offsets,
                ApiKey.InitProducerId: self.init_producer_id,
                ApiKey.SaslHandshake: self.sasl_handshake,
                ApiKey.SaslAuthenticate: self.sasl_authenticate}

    # ---- SASL -----------------------------------------------------------------------------

    async def sasl_handshake(self, session: Session, request: Request) -> Any:
        code = self.gw.auth.handshake(session, request.body.mechanism)
        return response_class(ApiKey.SaslHandshake, request.api_version)(
            error_code=code, mechanisms=sorted(self.gw.auth.mechanisms))

    async def sasl_authenticate(self, session: Session, request: Request) -> Any:
        code, message, lifetime = await self.gw.call(
            self.gw.auth.authenticate, session, bytes(request.body.auth_bytes))
        return response_class(ApiKey.SaslAuthenticate, request.api_version)(
            error_code=code, error_message=message, auth_bytes=b"",
            session_lifetime_ms=lifetime)

    # ---- Metadata -------------------------------------------------------------------------

    async def metadata(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.Metadata, request.api_version)
        body = request.body
        if body.topics is None or (request.api_version == 0 and not body.topics):
            names = await self.gw.call(self.gw.engine.list_topics)
            names = [n for n in names if self._may_describe(session, n)]
        else:
            names = [t.name for t in body.topics if t.name is not None]
        topics = await asyncio.gather(*(self._topic_metadata(session, cls, n) for n in names))
        host, port = self.gw.advertised
        broker = cls.MetadataResponseBroker(node_id=self.gw.node_id, host=host, port=port,
                                            rack=None)
        return cls(throttle_time_ms=0, brokers=[broker], cluster_id=CLUSTER_ID,
                   controller_id=self.gw.node_id, topics=list(topics))

    def _may_describe(self, session: Session, topic: str) -> bool:
        allows = self.gw.auth.allows
        return (allows(session, *auth.describe_route(topic))
                or allows(session, *auth.read_route(topic))
                or allows(session, *auth.produce_route(topic, 0)))

    async def _topic_metadata(self, session: Session, cls: Any, name: str) -> Any:
        topic_cls = cls.MetadataResponseTopic
        if not self._may_describe(session, name):
            return topic_cls(error_code=codes.TOPIC_AUTHORIZATION_FAILED, name=name,
                             partitions=[])
        try:
            desc: TopicDescription = await self.gw.call(self.gw.engine.topic_metadata, name)
        except StreamletError as error:
            return topic_cls(error_code=codes.code_for(error), name=name, partitions=[])
        node = self.gw.node_id
        partitions = [topic_cls.MetadataResponsePartition(
            error_code=0, partition_index=p, leader_id=node, leader_epoch=0,
            replica_nodes=[node], isr_nodes=[node], offline_replicas=[])
            for p in range(desc.partitions)]
        return topic_cls(error_code=0, name=name, topic_id=topic_uuid(desc.topic_id),
                         is_internal=False, partitions=partitions)

    # ---- Produce --------------------------------------------------------------------------

    async def produce(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.Produce, request.api_version)
        topic_cls = cls.TopicProduceResponse
        jobs = [(t.name, p.index, p.records) for t in body.topic_data for p in t.partition_data]
        deadline = int(time.time() * 1000) + _write_window(body.timeout_ms)
        results = await asyncio.gather(*(self._append(session, *job, body.transactional_id,
                                                      deadline) for job in jobs))
        by_topic: dict[str, list[Any]] = {}
        for (name, index, _), (code, result, message) in zip(jobs, results, strict=True):
            by_topic.setdefault(name, []).append(topic_cls.PartitionProduceResponse(
                index=index, error_code=code,
                base_offset=result.base_offset if result else -1,
                log_append_time_ms=result.log_append_time if result else -1,
                log_start_offset=result.log_start_offset if result else -1,
                record_errors=[], error_message=message))
        if body.acks == 0:  # no answer; a failure closes the connection, as a broker does,
            # so the client notices (and refreshes its metadata)
            session.closing = any(code != codes.NONE for code, _, _ in results)
            return None
        return cls(responses=[topic_cls(name=n, partition_responses=r)
                              for n, r in by_topic.items()], throttle_time_ms=0)

    async def _append(self, session: Session, topic: str, partition: int,
                      records: bytes | None, transactional_id: str | None, deadline_ms: int
                      ) -> tuple[int, AppendResult | None, str | None]:
        if not self.gw.auth.allows(session, *auth.produce_route(topic, partition)):
            return codes.TOPIC_AUTHORIZATION_FAILED, None, "Outside the caller's grant."
        if not records:
            return codes.CORRUPT_MESSAGE, None, "An empty record set."
        if len(records) < HEADER_SIZE:
            return codes.CORRUPT_MESSAGE, None, "A record set shorter than a batch header."
        producer = _producer_of(records)
        if transactional_id is not None:
            return await self._append_transactional(session, topic, partition, bytes(records),
                                                    transactional_id, producer, deadline_ms)
        try:
            if producer is not None:
                result = await self._idempotent(session, topic, partition, bytes(records),
                                                *producer, deadline_ms=deadline_ms)
            else:
                result = await self.gw.call(self.gw.engine.append, topic, partition,
                                            bytes(records))
        except StreamletError as error:
            return codes.code_for(error), None, error.message
        self._wake(topic, partition)
        return codes.NONE, result, None

    async def _append_transactional(
            self, session: Session, topic: str, partition: int, batch: bytes,
            transactional_id: str, producer: tuple[int, int, int, int] | None,
            deadline_ms: int) -> tuple[int, AppendResult | None, str | None]:
        """A batch of the transaction open for its producer id and epoch: appended naming
        that transaction, then staged in its record for EndTxn (:mod:`.transactions`)."""
        if not self.txn.allowed(session, transactional_id):
            return codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, "Outside the grant."
        if producer is None:
            return codes.INVALID_TXN_STATE, None, "A transactional batch needs a producer id."
        kafka = self.gw.engine.kafka_transactions
        who = ProducerIdentity(transactional_id, producer[0], producer[1])
        try:
            number = await self.gw.call(kafka.current, who)
            result = await self._idempotent(session, topic, partition, batch, *producer,
                                            transaction=(transactional_id, number),
                                            deadline_ms=deadline_ms)
            await self.gw.call(kafka.stage_batch, who, number, topic, partition,
                               result.base_offset)
        except StreamletError as error:
            return txn_code(error, ApiKey.Produce, 0), None, error.message
        self._wake(topic, partition)
        return codes.NONE, result, None

    async def _idempotent(self, session: Session, topic: str, partition: int, batch: bytes,
                          producer_id: int, epoch: int, sequence: int, count: int,
                          transaction: tuple[str, int] | None = None,
                          deadline_ms: int | None = None) -> AppendResult:
        """Append a batch of an idempotent producer (see the module's description). No
        write starts after ``deadline_ms`` (half the request's timeout, 10 s at most): a
        client resends only after its request timed out, so the attempts of one batch
        through two connections never overlap because of a timeout."""
        memory = session.handler_state.setdefault("producers", ProducerMemory())
        assert isinstance(memory, ProducerMemory)
        key = (producer_id, topic, partition)
        known = memory.classify(key, epoch, sequence)
        if isinstance(known, AppendResult):
            return known
        since = None if known else int(time.time() * 1000) - self.window_ms
        result: AppendResult = await self.gw.call(
            self.gw.engine.append, topic, partition, batch, None, since, transaction,
            deadline_ms=deadline_ms, check_sequence=since is not None)
        if result.duplicate:  # found in the log: the producer's newest may come after it
            memory.forget(key)
        else:
            memory.record(key, _Appended(epoch, sequence, count, result))
        return result

    def _wake(self, topic: str, partition: int) -> None:
        event = self._appended.pop((topic, partition), None)
        if event is not None:
            event.set()

    # ---- Fetch ----------------------------------------------------------------------------
    # read_committed (isolation_level 1, librdkafka's default) never returns the batches of
    # an aborted or open transaction: the engine skips them (and stops before an open one).
    # A fetch that only passed over aborted batches reads on from where they end, so the
    # client's next records arrive with an offset gap (as after compaction); with none yet
    # it gets an empty answer and asks again from its position.

    async def fetch(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.Fetch, request.api_version)
        wanted = [(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
                  for t in body.topics for p in t.partitions]
        deadline = time.monotonic() + max(0, body.max_wait_ms) / 1000
        pause = POLL_MIN_S
        while True:
            answers = await self._fetch_once(session, wanted, body.max_bytes,
                                             ISOLATION[getattr(body, "isolation_level", 0)])
            size = sum(sum(map(len, a[1].batches)) for a in answers
                       if isinstance(a[1], FetchResult))
            errors = any(a[0] != codes.NONE for a in answers)
            left = deadline - time.monotonic()
            if size >= max(1, body.min_bytes) or errors or left <= 0 or not wanted:
                break
            await self._wait_for_append(wanted, min(pause, left))
            pause = min(POLL_MAX_S, pause * 2)
        answers = _within(answers, body.max_bytes)
        ends = await asyncio.gather(*(self._end_of(w[0], w[1], a[1])
                                      for w, a in zip(wanted, answers, strict=True)))
        return self._fetch_response(cls, wanted, answers, ends)

    async def _end_of(self, topic: str, partition: int, found: FetchResult | int
                      ) -> tuple[int, int]:
        """(high watermark, last stable offset) to answer: a fetch that stopped short of
        the partition's end (max_bytes, an open transaction) reads the tail (one Query)."""
        if not isinstance(found, FetchResult):
            return found, found
        high = found.high_watermark if found.reached_end else \
            max(found.high_watermark, await self._high(topic, partition))
        stable = found.last_stable_offset
        return high, high if stable is None else stable

    async def _fetch_once(self, session: Session, wanted: list[tuple[str, int, int, int]],
                          max_bytes: int, isolation: str
                          ) -> list[tuple[int, FetchResult | int]]:
        budget = max_bytes if max_bytes > 0 else FETCH_BYTES_UNSET

        async def one(topic: str, partition: int, offset: int, limit: int
                      ) -> tuple[int, FetchResult | int]:
            if not self.gw.auth.allows(session, *auth.read_route(topic, partition)):
                return codes.TOPIC_AUTHORIZATION_FAILED, -1
            try:
                found: FetchResult = await self.gw.call(
                    self.gw.engine.fetch, topic, partition, offset,
                    max(1, min(limit, budget)), None, None, isolation)
                for _ in range(SKIP_ROUNDS):  # only aborted batches: read on past them
                    if found.batches or found.high_watermark <= offset:
                        break
                    found = await self.gw.call(
                        self.gw.engine.fetch, topic, partition, found.high_watermark,
                        max(1, min(limit, budget)), None, None, isolation)
                return codes.NONE, found
            except OffsetOutOfRange:
                return codes.OFFSET_OUT_OF_RANGE, await self._high(topic, partition)
            except StreamletError as error:
                return codes.code_for(error), -1

        return list(await asyncio.gather(*(one(*w) for w in wanted)))

    async def _high(self, topic: str, partition: int) -> int:
        try:
            return int((await self.gw.call(self.gw.engine.watermarks, topic, partition))[1])
        except StreamletError:
            return -1

    async def _wait_for_append(self, wanted: list[tuple[str, int, int, int]],
                               seconds: float) -> None:
        events = [self._appended.setdefault((t, p), asyncio.Event()) for t, p, _, _ in wanted]
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _fetch_response(self, cls: Any, wanted: list[tuple[str, int, int, int]],
                        answers: list[tuple[int, FetchResult | int]],
                        ends: list[tuple[int, int]]) -> Any:
        topic_cls = cls.FetchableTopicResponse
        part_cls = topic_cls.PartitionData
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition, _, _), (code, found), (high, stable) in zip(
                wanted, answers, ends, strict=True):
            if isinstance(found, FetchResult):
                data = part_cls(partition_index=partition, error_code=code,
                                high_watermark=high, last_stable_offset=stable,
                                log_start_offset=found.log_start_offset,
                                aborted_transactions=[], preferred_read_replica=-1,
                                records=b"".join(found.batches))
            else:
                data = part_cls(partition_index=partition, error_code=code,
                                high_watermark=high, last_stable_offset=stable,
                                log_start_offset=-1, aborted_transactions=[],
                                preferred_read_replica=-1, records=b"")
            by_topic.setdefault(topic, []).append(data)
        return cls(throttle_time_ms=0, error_code=0, session_id=0,
                   responses=[topic_cls(topic=t, partitions=p) for t, p in by_topic.items()])

    # ---- ListOffsets ----------------------------------------------------------------------

    async def list_offsets(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.ListOffsets, request.api_version)
        topic_cls = cls.ListOffsetsTopicResponse

        async def one(topic: str, partition: int, timestamp: int) -> Any:
            code, ts, offset = await self._offset(session, topic, partition, timestamp)
            return topic_cls.ListOffsetsPartitionResponse(
                partition_index=partition, error_code=code, timestamp=ts, offset=offset,
                leader_epoch=0)

        topics = []
        for t in request.body.topics:
            parts = await asyncio.gather(*(one(t.name, p.partition_index, p.timestamp)
                                           for p in t.partitions))
            topics.append(topic_cls(name=t.name, partitions=list(parts)))
        return cls(throttle_time_ms=0, topics=topics)

    async def _offset(self, session: Session, topic: str, partition: int, timestamp: int
                      ) -> tuple[int, int, int]:
        """(error code, timestamp, offset) for ListOffsets."""
        if not self.gw.auth.allows(session, *auth.read_route(topic, partition)):
            return codes.TOPIC_AUTHORIZATION_FAILED, -1, -1
        engine = self.gw.engine
        try:
            if timestamp in (-1, -2):
                low, high = await self.gw.call(engine.watermarks, topic, partition)
                return codes.NONE, -1, high if timestamp == -1 else low
            if timestamp < 0:
                return codes.UNSUPPORTED_VERSION, -1, -1
            found = await self.gw.call(engine.offset_for_time, topic, partition, timestamp)
            if found is None:
                return codes.NONE, -1, -1
            return codes.NONE, await self._timestamp_at(topic, partition, found), found
        except StreamletError as error:
            return codes.code_for(error), -1, -1

    async def _timestamp_at(self, topic: str, partition: int, offset: int) -> int:
        """The timestamp of the record at ``offset`` (ListOffsets answers it)."""
        try:
            found = await self.gw.call(self.gw.engine.fetch, topic, partition, offset, 1)
        except StreamletError:
            return -1
        for batch in found.batches[:1]:
            records, _ = decode_records(topic, partition, batch, 1 << 20)
            for record in records:
                if record.offset >= offset:
                    return record.timestamp
        return -1

    # ---- InitProducerId -------------------------------------------------------------------

    async def init_producer_id(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.InitProducerId, request.api_version)
        if request.body.transactional_id is not None:
            return await self.txn.init_producer_id(session, request)
        if not self.gw.auth.allows(session, *auth.PRODUCER_ID_ROUTE):
            return cls(throttle_time_ms=0, error_code=codes.CLUSTER_AUTHORIZATION_FAILED,
                       producer_id=-1, producer_epoch=-1)
        try:
            pid = await self.gw.call(self.gw.engine.init_producer_id)
        except StreamletError as error:
            return cls(throttle_time_ms=0, error_code=codes.code_for(error), producer_id=-1,
                       producer_epoch=-1)
        return cls(throttle_time_ms=0, error_code=0, producer_id=pid, producer_epoch=0)


def _write_window(timeout_ms: int) -> int:
    """How long after a Produce arrived its appends may start a write: half the client's
    request timeout, between 1 and 10 s (wire.APPEND_DEADLINE_MS, as over HTTP)."""
    if timeout_ms <= 0:
        return APPEND_DEADLINE_MS
    return max(MIN_WRITE_WINDOW_MS, min(timeout_ms // 2, APPEND_DEADLINE_MS))


def _within(answers: list[tuple[int, FetchResult | int]], max_bytes: int
            ) -> list[tuple[int, FetchResult | int]]:
    """The answers cut to the request's ``max_bytes`` over all partitions, in the order
    asked, as a broker cuts them: whole batches only, and the first batch of the first
    partition with data even when it alone is larger (so a consumer always progresses).
    A partition cut short answers fewer batches; its consumer asks again from there."""
    budget = max_bytes if max_bytes > 0 else FETCH_BYTES_UNSET
    used, out = 0, list[tuple[int, FetchResult | int]]()
    for code, found in answers:
        kept: list[bytes] = []
        if isinstance(found, FetchResult):
            for batch in found.batches:
                if used + len(batch) > budget and used > 0:
                    break
                kept.append(batch)
                used += len(batch)
            if len(kept) < len(found.batches):
                out.append((code, replace(found, batches=kept, reached_end=False)))
                continue
        out.append((code, found))
    return out


def _producer_of(records: bytes) -> tuple[int, int, int, int] | None:
    """(producer id, epoch, base sequence, record count) of an idempotent batch."""
    fields = HEADER.unpack_from(records)
    producer_id, epoch, sequence, count = fields[9], fields[10], fields[11], fields[12]
    return None if producer_id < 0 else (producer_id, epoch, sequence, count)


__all__ = ["DataApis", "ProducerMemory", "topic_uuid"]
