"""``streamlet demo``: produce keyed JSON events, read them back, prove nothing was lost.

Runs against an embedded local platform (or a given endpoint): creates a topic, produces
``records`` events over 200 user keys, consumes them with a fresh consumer and checks that
every event came back exactly once, where the producer was told it was written, and in
order per key (a key lives on one partition, and its offsets increase). Then it archives
the topic to S3 segments and replays it from offset 0: the same records must come back.

Example:
    >>> result = run_demo(records=500)                    # doctest: +SKIP
    >>> result.ok, result.consumed
    (True, 500)
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..admin import Admin
from ..consumer import Consumer
from ..errors import InvalidRequest, TopicExists
from ..producer import Producer
from ..records import Record, RecordMetadata, TopicPartition

if TYPE_CHECKING:
    from rich.console import Console

DEMO_TOPIC = "demo-events"
DISTINCT_KEYS = 200
EVENT_TYPES = ("page_view", "search", "add_to_cart", "checkout", "purchase")
PAGES = ("/", "/shop", "/shop/shoes", "/shop/hats", "/cart", "/account")


@dataclass(frozen=True)
class PartitionStats:
    """What the demo read from one partition."""

    partition: int
    records: int
    first_offset: int | None
    last_offset: int | None
    high_watermark: int


@dataclass(frozen=True)
class DemoResult:
    """Counts, timings and every verification problem found (none when ``ok``)."""

    topic: str
    produced: int
    consumed: int
    partitions: list[PartitionStats]
    produce_seconds: float
    consume_seconds: float
    elapsed_seconds: float
    problems: list[str]
    archived_segments: int = 0
    archived_bytes: int = 0
    replayed: int = 0
    """Records read again, from the S3 segments the topic was archived to."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def produce_rate(self) -> float:
        """Records per second, from the first send to the end of the flush."""
        return self.produced / max(self.produce_seconds, 1e-9)

    @property
    def consume_rate(self) -> float:
        """Records per second, from the consumer's creation to the last record."""
        return self.consumed / max(self.consume_seconds, 1e-9)


@dataclass(frozen=True)
class _Event:
    event_id: int
    key: bytes
    value: bytes


def run_demo(*, partitions: int = 4, records: int = 5000, console: Console | None = None,
             endpoint: str | None = None, timeout_s: float = 60.0,
             seed: int | None = None) -> DemoResult:
    """Run the demo; without ``endpoint`` it starts (and stops) an embedded local platform."""
    if partitions < 1 or records < 1:
        raise InvalidRequest(f"The demo needs partitions >= 1 and records >= 1, "
                             f"got {partitions} and {records}.")
    started = time.perf_counter()
    with _platform(endpoint, console) as url:
        return _Run(url, console, started).run(partitions, records, timeout_s, seed)


@contextmanager
def _platform(endpoint: str | None, console: Console | None) -> Iterator[str]:
    if endpoint is not None:
        yield endpoint
        return
    from .platform import LocalPlatform

    with LocalPlatform(port=0) as platform:
        _say(console, f"Started an embedded local platform at {platform.aws_endpoint_url}")
        yield platform.endpoint


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(f"[dim]{message}[/dim]")


class _Run:
    """One demo run against one endpoint."""

    def __init__(self, endpoint: str, console: Console | None, started: float) -> None:
        self.endpoint, self.console, self.started = endpoint, console, started
        self.admin = Admin(endpoint)

    def run(self, partitions: int, records: int, timeout_s: float,
            seed: int | None) -> DemoResult:
        topic = self._create_topic(partitions)
        events = make_events(records, random.Random(seed))
        sent, produce_s = self._produce(topic, events)
        got, consume_s = self._consume(topic, records, timeout_s)
        stats = [self._stats(topic, p, got) for p in range(partitions)]
        problems = verify(events, sent, got) + check_stats(stats)
        segments = [s for r in self.admin.archive(topic, force=True) for s in r.segments]
        _say(self.console, f"Archived the topic to {len(segments)} S3 segments")
        replayed = self._replay(topic, partitions, len(got), timeout_s)
        problems += check_replay(got, replayed)
        return DemoResult(topic, len(sent), len(got), stats, produce_s, consume_s,
                          time.perf_counter() - self.started, problems, len(segments),
                          sum(s.size for s in segments), len(replayed))

    def _create_topic(self, partitions: int) -> str:
        """``demo-events``, or ``demo-events-N`` if an earlier run left it behind."""
        for attempt in range(1, 101):
            name = DEMO_TOPIC if attempt == 1 else f"{DEMO_TOPIC}-{attempt}"
            try:
                self.admin.create_topic(name, partitions)
            except TopicExists:
                continue
            _say(self.console, f"Created topic '{name}' with {partitions} partitions")
            return name
        raise TopicExists(DEMO_TOPIC)

    def _produce(self, topic: str, events: list[_Event]) -> tuple[list[RecordMetadata], float]:
        start = time.perf_counter()
        with Producer(self.endpoint) as producer:
            futures = [producer.send(topic, e.value, key=e.key) for e in events]
            producer.flush()
        sent = [future.result() for future in futures]
        elapsed = time.perf_counter() - start
        _say(self.console, f"Produced {len(sent)} records in {elapsed:.2f} s")
        return sent, elapsed

    def _consume(self, topic: str, expected: int, timeout_s: float) -> tuple[list[Record], float]:
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        got: list[Record] = []
        with Consumer(topic, endpoint=self.endpoint, auto_offset_reset="earliest",
                      max_poll_records=1000) as consumer:
            while len(got) < expected and time.monotonic() < deadline:
                got += consumer.poll(timeout=min(1.0, max(deadline - time.monotonic(), 0)))
            elapsed = time.perf_counter() - start
            got += consumer.poll(timeout=0.2)  # anything beyond the count is a duplicate
        _say(self.console, f"Consumed {len(got)} records in {elapsed:.2f} s")
        return got, elapsed

    def _replay(self, topic: str, partitions: int, expected: int,
                timeout_s: float) -> list[Record]:
        """Read the whole topic again from offset 0: now it comes from S3."""
        deadline = time.monotonic() + timeout_s
        got: list[Record] = []
        with Consumer(endpoint=self.endpoint, auto_offset_reset="earliest",
                      max_poll_records=1000) as consumer:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            while len(got) < expected and time.monotonic() < deadline:
                got += consumer.poll(timeout=min(1.0, max(deadline - time.monotonic(), 0)))
        _say(self.console, f"Replayed {len(got)} records from the archive")
        return got

    def _stats(self, topic: str, partition: int, got: list[Record]) -> PartitionStats:
        offsets = [r.offset for r in got if r.partition == partition]
        high = self.admin.watermarks(topic, partition)[1]
        return PartitionStats(partition, len(offsets), min(offsets, default=None),
                              max(offsets, default=None), high)


def make_events(count: int, rng: random.Random) -> list[_Event]:
    """``count`` small JSON events over ``DISTINCT_KEYS`` users, keyed by user."""
    now = int(time.time() * 1000)
    events = []
    for event_id in range(count):
        user = f"user-{rng.randrange(DISTINCT_KEYS)}"
        kind = rng.choice(EVENT_TYPES)
        body = {"event_id": event_id, "user": user, "type": kind, "page": rng.choice(PAGES),
                "ts": now + event_id}
        if kind == "purchase":
            body["amount_cents"] = rng.randrange(199, 25_000)
        events.append(_Event(event_id, user.encode(), json.dumps(body).encode()))
    return events


def verify(events: list[_Event], sent: list[RecordMetadata], got: list[Record]) -> list[str]:
    """Exactly once, where the producer said, and in order per key."""
    ids = [json.loads(r.value or b"null")["event_id"] for r in got]
    return (_exactly_once(len(events), ids) + _where_acknowledged(sent, got, ids)
            + _ordered_per_key(events, got, ids))


def _exactly_once(produced: int, ids: list[int]) -> list[str]:
    seen = Counter(ids)
    missing = produced - len(set(seen) & set(range(produced)))
    duplicated = sum(1 for n in seen.values() if n > 1)
    problems = [f"{missing} event(s) never came back"] if missing else []
    if duplicated:
        problems.append(f"{duplicated} event(s) came back more than once")
    if len(ids) != produced:
        problems.append(f"produced {produced} records but consumed {len(ids)}")
    return problems


def _where_acknowledged(sent: list[RecordMetadata], got: list[Record],
                        ids: list[int]) -> list[str]:
    wrong = sum(1 for r, i in zip(got, ids, strict=True)
                if 0 <= i < len(sent) and (sent[i].partition, sent[i].offset)
                != (r.partition, r.offset))
    return [f"{wrong} record(s) read at a different partition/offset than acknowledged"] \
        if wrong else []


def _ordered_per_key(events: list[_Event], got: list[Record], ids: list[int]) -> list[str]:
    partitions: dict[bytes, set[int]] = defaultdict(set)
    order: dict[bytes, list[int]] = defaultdict(list)
    for record, event_id in zip(got, ids, strict=True):
        partitions[record.key or b""].add(record.partition)
        order[record.key or b""].append(event_id)
    split = sum(1 for p in partitions.values() if len(p) > 1)
    expected: dict[bytes, list[int]] = defaultdict(list)
    for event in events:
        expected[event.key].append(event.event_id)
    reordered = sum(1 for key, ids_ in order.items() if ids_ != expected.get(key))
    problems = [f"{split} key(s) spread over several partitions"] if split else []
    if reordered:
        problems.append(f"{reordered} key(s) read out of production order")
    return problems


def check_replay(first: list[Record], replayed: list[Record]) -> list[str]:
    """The replay from S3 must return the very records of the first read."""
    def rows(records: list[Record]) -> list[tuple[object, ...]]:
        return sorted((r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers))
                      for r in records)

    if rows(first) != rows(replayed):
        return [f"replay from the archive: {len(replayed)} records differ from the "
                f"{len(first)} read before archiving"]
    return []


def check_stats(stats: list[PartitionStats]) -> list[str]:
    """Offsets dense per partition: first..last holds every record, and high = last + 1."""
    problems = []
    for s in stats:
        span = 0 if s.first_offset is None or s.last_offset is None \
            else s.last_offset - s.first_offset + 1
        end = 0 if s.last_offset is None else s.last_offset + 1
        if span != s.records or end != s.high_watermark:
            problems.append(f"partition {s.partition}: {s.records} records in offsets "
                            f"{s.first_offset}..{s.last_offset}, high watermark "
                            f"{s.high_watermark}")
    return problems
