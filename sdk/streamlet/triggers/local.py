"""Triggers without AWS Lambda: the dispatcher driven by the DynamoDB streams of a local
(or in-process moto) deployment, delivering to Python callables and sinks.

:class:`LocalTriggers` does what the deployed stack's event source mappings and
dispatcher function do, with the same code: it reads the log table's stream (and the
groups table's, for ``reset-offsets``) as signals, runs a dispatcher session per
signalled partition (one at a time per partition, several partitions at once), and
schedules the wake-ups sessions ask for (batching windows, backoff). On start it gives
every trigger its starting position and delivers any backlog, taking over claims a crashed
earlier runner left behind.

``streamlet local --trigger TOPIC=module:function`` runs one in the platform's process;
tests use it in process::

    with LocalTriggers.in_process(engine) as triggers:
        triggers.add(Trigger("billing", "orders", function="tests:handler",
                             starting_position="TRIM_HORIZON"), handler=handler)
        producer.send("orders", b"...")
        triggers.drain()           # every session done, nothing scheduled
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Self

from ..clock import SYSTEM, Clock
from ..engine import Engine
from ..engine.streams import Signal, enable_streams, redrive, signal
from ..errors import StreamletError
from .config import QueueDestination, TopicDestination, Trigger
from .dispatch import Dispatcher, Result
from .dlq import DeadLetters, QueueDeadLetters, TopicDeadLetters
from .targets import FunctionTarget, Handler, Target, load_handler

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logging.getLogger("streamlet.triggers")
Key = tuple[str, int]  # (trigger name, partition)
SESSION_BUDGET_S = 30.0


class _Shards:
    """Iterators over every shard of one stream, started at LATEST."""

    def __init__(self, streams: DynamoDBStreamsClient, arn: str) -> None:
        self._streams, self._arn = streams, arn
        self._iterators: dict[str, str | None] = {}
        self._refresh("LATEST")

    def _refresh(self, kind: Literal["LATEST", "TRIM_HORIZON"]) -> None:
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in shards.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id,
                    ShardIteratorType=kind)["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            out += [dict(r) for r in page.get("Records", [])]
            self._iterators[shard_id] = page.get("NextShardIterator")
        if any(i is None for i in self._iterators.values()):
            self._refresh("TRIM_HORIZON")  # a closed shard: its children start at the top
        return out


class LocalTriggers:
    """Runs triggers over a deployment reachable directly (local platform or moto).

    Args:
        engine: the deployment.
        dynamodb, streams: clients of the same endpoint (streams are turned on if off).
        clients: boto3 clients for sinks and SQS dead letters (``"s3"``, ``"sqs"``,
            ``"firehose"``, ``"events"``), created on first use if absent.
        poll_interval_s: how often the streams are read (Lambda reads DynamoDB streams
            4 times a second, free of charge).
        workers: partitions delivered at once.
        backoff_ms: first and largest pause between retries of a failing batch.
        batching_window_s: gather signals this long before starting sessions, as the
            deployed stream mapping does (``MaximumBatchingWindowInSeconds``: the smallest
            trigger window, rounded up to a second); 0 starts them at once.
    """

    def __init__(self, engine: Engine, dynamodb: DynamoDBClient,
                 streams: DynamoDBStreamsClient, *, clients: Mapping[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None,
                 poll_interval_s: float = 0.1, workers: int = 4,
                 backoff_ms: tuple[int, int] = (100, 5000), clock: Clock = SYSTEM,
                 bootstrap_servers: str | None = None, batching_window_s: float = 0.0) -> None:
        self.engine = engine
        self._ddb, self._streams = dynamodb, streams
        self._clients = dict(clients or {})
        self._client_factory = client_factory
        self.poll_interval_s = poll_interval_s
        self.bootstrap = bootstrap_servers or f"streamlet://{engine.names.prefix}"
        self.dispatcher = Dispatcher(engine, [], {}, token=f"local-{uuid.uuid4().hex[:12]}",
                                     clock=clock, backoff_ms=backoff_ms)
        self._clock = clock
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="streamlet-trigger")
        self._lock = threading.Condition()
        self._running: set[Key] = set()
        self._dirty: dict[Key, int | None] = {}
        self._wakeups: list[tuple[float, Key]] = []
        self._quiet = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shards: list[_Shards] = []
        self.batching_window_s = batching_window_s
        self._gathered: dict[Key, int | None] = {}
        self._gathered_since = 0.0
        self.results: list[Result] = []
        """Every session's result, in the order they ended (tests read it)."""
        self.polls = 0
        """Stream reads so far (Lambda's own, on AWS: not billed)."""
        self.wakes = 0
        """Reads that started sessions: what would each be a dispatcher invocation on AWS."""

    @classmethod
    def in_process(cls, engine: Engine, region: str = "us-east-1", **kwargs: Any) -> Self:
        """For an engine on in-process moto (``mock_aws``): clients from the environment."""
        import boto3
        from botocore.config import Config

        # botocore sends streams requests to an account-specific endpoint moto does not know
        config = Config(account_id_endpoint_mode="disabled")
        make: Any = boto3.client
        return cls(engine, make("dynamodb", region_name=region),
                   make("dynamodbstreams", region_name=region, config=config),
                   client_factory=lambda service: make(service, region_name=region), **kwargs)

    # ---- triggers -------------------------------------------------------------------------

    def add(self, trigger: Trigger, handler: Handler | None = None,
            target: Target | None = None) -> None:
        """Run ``trigger``: to ``handler`` (or ``target``), else to what it names
        (``module:function``, or its sink). Added while running, it starts at once."""
        if target is None:
            target = self._target(trigger, handler)
        self.dispatcher.add(trigger, target, self._dead_letters(trigger))
        if self._thread is not None:
            self._activate(trigger)

    def _target(self, trigger: Trigger, handler: Handler | None) -> Target:
        if handler is None and trigger.sink is not None:
            from .sinks import build_sink

            return build_sink(trigger.sink, self.client)
        assert handler is not None or trigger.function is not None
        return FunctionTarget(handler or load_handler(trigger.function or ""),
                              self.bootstrap, trigger.name)

    def _dead_letters(self, trigger: Trigger) -> DeadLetters | None:
        if isinstance(trigger.on_failure, TopicDestination):
            return TopicDeadLetters(self.engine)
        if isinstance(trigger.on_failure, QueueDestination):
            return QueueDeadLetters(self.client("sqs"))
        return None

    def client(self, service: str) -> Any:
        """The boto3 client for ``service`` (sinks and dead letters use them)."""
        if service not in self._clients:
            if self._client_factory is None:
                raise ValueError(f"No {service} client: pass clients= or client_factory=.")
            self._clients[service] = self._client_factory(service)
        return self._clients[service]

    # ---- running --------------------------------------------------------------------------

    def start(self) -> Self:
        """Turn the streams on, start every trigger and read the streams in the background."""
        log_arn, groups_arn = enable_streams(self._ddb, self.engine.names)
        self._shards = [_Shards(self._streams, log_arn), _Shards(self._streams, groups_arn)]
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="streamlet-triggers",
                                        daemon=True)
        self._thread.start()
        for trigger in list(self.dispatcher.triggers.values()):
            self._activate(trigger)
        return self

    def _activate(self, trigger: Trigger) -> None:
        """Starting offsets everywhere, then deliver what is already there (taking over a
        dead runner's claims)."""
        try:
            backlog = self.dispatcher.activate(trigger.name)
        except StreamletError as error:  # e.g. the topic does not exist yet
            log.info("trigger %s waits for its topic: %s", trigger.name, error)
            return
        for partition in backlog:
            self._submit((trigger.name, partition), None, force=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.poll()
            except Exception:  # the platform is stopping, or a transient error
                log.exception("reading the streams failed")
                found = 0
            if not found:
                self._stop.wait(self.poll_interval_s)

    def poll(self) -> int:
        """Read both streams once and start what they signal (and what is due); how many
        sessions it started."""
        work = self._gather([s for s in map(signal, self._shards[0].read()
                                            if self._shards else []) if s is not None])
        resets = [r for r in map(redrive, self._shards[1].read() if self._shards else [])
                  if r is not None]
        for reset in resets:
            for trigger in self.dispatcher.for_topic(reset.topic):
                if trigger.group == reset.group:
                    work.setdefault((trigger.name, reset.partition), None)
        work.update({key: None for key in self._due() if key not in work})
        for key, hint in work.items():
            self._submit(key, hint)
        with self._lock:
            self._quiet = 0 if work else self._quiet + 1
            self.polls += 1
            self.wakes += bool(work)
            self._lock.notify_all()
        return len(work)

    def _gather(self, signals: list[Signal]) -> dict[Key, int | None]:
        """Signals held for the batching window (from the first one), then released."""
        now = self._clock.monotonic()
        with self._lock:
            if signals and not self._gathered:
                self._gathered_since = now
            for found in signals:
                for trigger in self.dispatcher.for_topic(found.topic):
                    key = (trigger.name, found.partition)
                    hint = self._gathered.get(key)
                    self._gathered[key] = found.base_offset if hint is None else \
                        min(hint, found.base_offset)
            if not self._gathered or now - self._gathered_since < self.batching_window_s:
                return {}
            work, self._gathered = self._gathered, {}
            return work

    def _due(self) -> list[Key]:
        now, out = self._clock.monotonic(), []
        with self._lock:
            while self._wakeups and self._wakeups[0][0] <= now:
                out.append(heapq.heappop(self._wakeups)[1])
        return out

    def _submit(self, key: Key, hint: int | None, force: bool = False) -> None:
        with self._lock:
            if key in self._running:
                previous = self._dirty.get(key)
                self._dirty[key] = hint if previous is None else \
                    (previous if hint is None else min(previous, hint))
                return
            self._running.add(key)
        self._pool.submit(self._session, key, hint, force)

    def _session(self, key: Key, hint: int | None, force: bool) -> None:
        name, partition = key
        try:
            result = self.dispatcher.dispatch(
                name, partition, hint=hint, force=force,
                deadline=self._clock.monotonic() + SESSION_BUDGET_S)
        except Exception as error:  # as the event source mapping retries a failed batch
            log.exception("trigger %s partition %d: session failed", name, partition)
            result = Result(name, partition, error=f"{type(error).__name__}: {error}",
                            wake_after_ms=self.dispatcher.backoff_ms[0] or 10)
        with self._lock:
            self.results.append(result)
            self._running.discard(key)
            self._quiet = 0
            if result.wake_after_ms is not None:
                heapq.heappush(self._wakeups, (self._clock.monotonic()
                                               + result.wake_after_ms / 1000, key))
            again = key in self._dirty
            pending = self._dirty.pop(key, None)
            self._lock.notify_all()
        if again:
            self._submit(key, pending)

    # ---- waiting (tests) ------------------------------------------------------------------

    def idle(self) -> bool:
        """No session running or scheduled, and the streams read empty since."""
        with self._lock:
            return not self._running and not self._dirty and not self._wakeups and \
                not self._gathered and self._quiet >= 2

    def drain(self, timeout: float = 10.0) -> None:
        """Block until :meth:`idle` (every signalled record handled); TimeoutError after
        ``timeout`` seconds (a batch that keeps failing with unlimited retries never is)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._quiet = 0
            while not (not self._running and not self._dirty and not self._wakeups
                       and not self._gathered and self._quiet >= 2):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"triggers still busy after {timeout} s: running "
                                       f"{sorted(self._running)}, scheduled "
                                       f"{sorted(k for _, k in self._wakeups)}")
                self._lock.wait(min(left, 0.05))
