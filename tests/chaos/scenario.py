"""R1/R2/R3: producers and tail readers under injected AWS faults, history-checked.

8 producers x 500 records into 4 partitions. Every DynamoDB and S3 request of a producer
may be throttled, time out before being applied, be applied with its reply lost, be
applied and answered 500, or crash the producer before or after the call. A crashed
producer restarts with a fresh producer id and goes on with new values (values are
never re-sent above the client, so any repeat is the system's duplicate). Readers poll
the tail meanwhile; a final clean drain reads every partition from offset 0.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field

from streamlet import Consumer, Producer, RecordMetadata, TopicPartition
from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.errors import RequestTimedOut, StreamletError
from streamlet.local import LocalPlatform
from streamlet.transport import Transport
from tests.chaos.fleet import FaultyHttp, Fleet
from tests.harness.faults import FaultPlan, FaultRates, SimulatedCrash, install
from tests.harness.history import History, Reads

PRODUCERS, RECORDS, PARTITIONS = 8, 500, 4
WRITE_FAULTS = FaultRates(throttle=0.03, timeout_before=0.02, lost_ack=0.03,
                          ambiguous_500=0.02, crash_before=0.005, crash_after=0.005)
READ_FAULTS = FaultRates(throttle=0.03, timeout_before=0.02, lost_ack=0.02, ambiguous_500=0.02)
SERVER_FAULTS = FaultRates(throttle=0.03, timeout_before=0.02, lost_ack=0.03,
                           ambiguous_500=0.02)
"""Inside the API (a Lambda's AWS calls); client crashes come from FaultyHttp instead."""


@dataclass
class Outcome:
    history: History
    drain: Reads
    faults: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    seconds: float = 0.0


def faulty_engine(platform: LocalPlatform, plan: FaultPlan) -> Engine:
    dynamodb, s3 = platform.client("dynamodb"), platform.client("s3")
    install(dynamodb, plan)
    install(s3, plan)
    return Engine(dynamodb, s3, platform.names)


class ProducerProcess:
    """One producer 'process': restarts after a simulated crash. Over HTTP it talks to
    the fleet (faults inside the API) through a transport that loses replies."""

    def __init__(self, n: int, platform: LocalPlatform, topic: str, history: History,
                 seed: int, idempotence: bool, fleet: Fleet | None = None) -> None:
        self.n, self.platform, self.topic, self.history = n, platform, topic, history
        self.plan = FaultPlan(seed=seed, rates=WRITE_FAULTS)
        self.idempotence = idempotence
        self.fleet = fleet
        self.restarts = 0
        self.http_faults: Counter[str] = Counter()

    def _new(self) -> Producer:
        transport: Transport
        if self.fleet is None:
            transport = faulty_engine(self.platform, self.plan)
        else:
            transport = FaultyHttp(self.fleet.url, seed=self.plan.seed + self.restarts,
                                   timeout=self.fleet.client_timeout)
            self._http = transport
        return Producer(transport=transport, linger_ms=2, enable_idempotence=self.idempotence,
                        delivery_timeout_ms=60_000, retry_backoff_ms=10)

    def counts(self) -> Counter[str]:
        """The faults this producer met (over HTTP: those of its transports)."""
        if self.fleet is None:
            return self.plan.counts()
        return self.http_faults + Counter(self._http.faults)

    def run(self) -> None:
        producer = self._new()
        for i in range(RECORDS):
            if producer._fatal is not None:
                if self.fleet is not None:
                    self.http_faults.update(self._http.faults)
                self.restarts += 1
                producer = self._new()
            self._send(producer, f"v-{self.n}-{i}", f"k-{self.n}-{i % 16}")
            if i % 100 == 99:
                self._flush(producer)
        self._flush(producer)

    def _send(self, producer: Producer, value: str, key: str) -> None:
        op = self.history.invoke_send(self.n, f"p{self.n}", self.topic, None, value)
        try:
            future = producer.send(self.topic, value, key=key)
        except (StreamletError, SimulatedCrash) as error:  # nothing was queued
            self.history.complete_send(op, "fail", error=error)
            return
        future.add_done_callback(lambda f: self._complete(op, f))

    def _complete(self, op: int, future: Future[RecordMetadata]) -> None:
        error = future.exception()
        if error is None:
            meta = future.result()
            self.history.complete_send(op, "ok", meta.partition, meta.offset)
        elif isinstance(error, SimulatedCrash | RequestTimedOut) or error.__class__.retriable:
            self.history.complete_send(op, "info", error=error)
        else:
            self.history.complete_send(op, "fail", error=error)

    def _flush(self, producer: Producer) -> None:
        if producer._fatal is None:
            producer.flush(timeout=120)


class Reader:
    """Polls the tail of every partition; SDK consumer or raw engine fetches."""

    def __init__(self, n: int, platform: LocalPlatform, topic: str, history: History,
                 seed: int, raw: bool) -> None:
        self.n, self.topic, self.history, self.raw = n, topic, history, raw
        self.engine = faulty_engine(platform, FaultPlan(seed=seed, rates=READ_FAULTS))
        self.positions = dict.fromkeys(range(PARTITIONS), 0)
        self.stop = threading.Event()
        self.polls = 0

    def run(self) -> None:
        session = f"reader-{self.n}"
        self.history.record_assign(f"r{self.n}", session)
        consumer = None if self.raw else Consumer(transport=self.engine,
                                                  auto_offset_reset="earliest")
        if consumer is not None:
            consumer.assign([TopicPartition(self.topic, p) for p in range(PARTITIONS)])
        while not self.stop.is_set():
            try:
                self._poll_raw(session) if consumer is None else self._poll(consumer, session)
            except StreamletError:
                continue  # a transient read failure: poll again from the same position
            self.polls += 1
            time.sleep(0.005)

    def _poll(self, consumer: Consumer, session: str) -> None:
        polled: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for r in consumer.poll(timeout=0.05):
            polled.setdefault((r.topic, r.partition), []).append((r.offset, _text(r.value)))
        if polled:
            self.history.record_poll(f"r{self.n}", session, polled)

    def _poll_raw(self, session: str) -> None:
        for p in range(PARTITIONS):
            result = self.engine.fetch(self.topic, p, self.positions[p], max_records=200)
            rows = [(r.offset, _text(r.value)) for b in result.batches
                    for r in decode_batch(self.topic, p, b) if r.offset >= self.positions[p]]
            if rows:
                self.positions[p] = rows[-1][0] + 1
                self.history.record_poll(f"r{self.n}", session, {(self.topic, p): rows},
                                         hwm={(self.topic, p): result.high_watermark})


def _text(value: bytes | None) -> str:
    return (value or b"").decode()


def final_drain(platform: LocalPlatform, topic: str) -> Reads:
    engine = platform.engine()
    drain: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for p in range(PARTITIONS):
        rows = drain.setdefault((topic, p), [])
        low, high = engine.watermarks(topic, p)
        while low < high:
            for batch in engine.fetch(topic, p, low).batches:
                rows += [(r.offset, _text(r.value)) for r in decode_batch(topic, p, batch)
                         if r.offset >= low]
            low = rows[-1][0] + 1
    return drain


def run_scenario(platform: LocalPlatform, topic: str, *, idempotence: bool, seed: int,
                 over_http: bool = False, client_timeout: float = 35.0) -> Outcome:
    """Direct: each producer's engine has faults injected below botocore. Over HTTP: the
    producers reach a fleet of Lambdas (faults below their botocore, requests spread over
    several engines) through a transport that loses replies and crashes, and gives up on
    a request after ``client_timeout`` seconds."""
    platform.engine().create_topic(topic, PARTITIONS)
    history = History()
    fleet = Fleet(platform, FaultPlan(seed=seed, rates=SERVER_FAULTS), seed,
                  client_timeout) if over_http else None
    try:
        return _run(platform, topic, history, idempotence, seed, fleet)
    finally:
        if fleet is not None:
            fleet.stop()


def _run(platform: LocalPlatform, topic: str, history: History, idempotence: bool,
         seed: int, fleet: Fleet | None) -> Outcome:
    producers = [ProducerProcess(n, platform, topic, history, seed * 100 + n, idempotence,
                                 fleet) for n in range(PRODUCERS)]
    readers = [Reader(n, platform, topic, history, seed * 100 + 50 + n, raw=n % 2 == 0)
               for n in range(4)]
    started = time.monotonic()
    threads = [threading.Thread(target=x.run, daemon=True) for x in (*producers, *readers)]
    for t in threads:
        t.start()
    for t in threads[:PRODUCERS]:
        t.join(timeout=300)
    for reader in readers:
        reader.stop.set()
    for t in threads[PRODUCERS:]:
        t.join(timeout=30)
    faults: Counter[str] = Counter()
    for p in producers:
        faults.update(p.counts())
    if fleet is not None:
        faults.update(fleet.plan.counts())
    return Outcome(history, final_drain(platform, topic), faults,
                   sum(p.restarts for p in producers), time.monotonic() - started)


__all__ = ["Outcome", "run_scenario"]
