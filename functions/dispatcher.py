"""The trigger dispatcher function: what wakes it, and where its work goes.

Four kinds of event invoke it (``functions.api.dispatcher_handler``):

- **DynamoDB stream batches** from the log table (filtered to new batch items of triggered
  topics): each names partitions with new records, and a dispatcher session per
  (trigger, partition) delivers from the trigger group's committed offset. The records are
  signals only (``streamlet.engine.streams``): never content, never order.
- **DynamoDB stream batches** from the groups table (filtered to leases ``reset-offsets``
  rewrote): a session re-drives that partition from its new offset.
- **Wake-ups** from the dispatcher's SQS queue: a session that must wait longer than a
  second (a batching window, a backoff, its time budget) sends itself one with
  ``DelaySeconds``; nothing sleeps and nothing polls.
- **Activation** (a CloudFormation custom resource, at deploy): every partition of a
  trigger gets its starting position, and partitions with a backlog get a wake-up.

Sessions of one invocation run in parallel (one per partition), within the function's
remaining time. The claim token is the event's identity (the stream batch's first and last
event ids, the message id), so when Lambda retries a batch after a crash the retry takes
its own claims back at once. Configuration: ``STREAMLET_TRIGGERS`` (the triggers, JSON)
and ``STREAMLET_WAKEUP_QUEUE`` (the queue URL).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from streamlet.engine.streams import redrive, signal
from streamlet.triggers import (
    Dispatcher,
    LambdaTarget,
    QueueDeadLetters,
    QueueDestination,
    Result,
    TopicDeadLetters,
    TopicDestination,
    Trigger,
)
from streamlet.triggers.config import loads
from streamlet.triggers.sinks import build_sink

from ._runtime import engine, logger, metrics

TRIGGERS_ENV = "STREAMLET_TRIGGERS"
WAKEUP_QUEUE_ENV = "STREAMLET_WAKEUP_QUEUE"
MAX_DELAY_S = 900  # SQS DelaySeconds
MARGIN_MS = 20_000
"""Kept back from the function's remaining time: sessions end, commit and release."""
SESSION_BUDGET_S = 10.0
"""A session hands over (a wake-up at once) after this long, so one busy partition never
holds a stream shard's invocation (and the other partitions' signals) for minutes."""
WORKERS = 8
Work = dict[tuple[str, int], int | None]
"""(trigger name, partition) -> the lowest base offset signalled (None: none)."""


class _Clients:
    """boto3 clients, made on first use (none at import) and kept for the container."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.factory: Callable[[str], Any] = _boto3_client

    def __call__(self, service: str) -> Any:
        with self._lock:
            if service not in self._made:
                self._made[service] = self.factory(service)
            return self._made[service]

    def reset(self) -> None:
        with self._lock:
            self._made.clear()


def _boto3_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # a synchronous invoke may run as long as the function's own timeout
    read = 900 if service == "lambda" else 10
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3,
                    read_timeout=read)
    make: Any = boto3.client
    return make(service, config=config)


client = _Clients()


def triggers() -> list[Trigger]:
    return loads(os.environ.get(TRIGGERS_ENV, "[]"))


def _bootstrap() -> str:
    return f"streamlet://{os.environ.get('STREAMLET_TABLE_PREFIX', 'streamlet')}"


def dispatcher(token: str) -> Dispatcher:
    """The dispatcher for this invocation: the configured triggers and their targets."""
    found = triggers()
    targets: dict[str, Any] = {}
    dead: dict[str, Any] = {}
    for trigger in found:
        targets[trigger.name] = build_sink(trigger.sink, client) if trigger.sink is not None \
            else LambdaTarget(client("lambda"), trigger.function or "", _bootstrap())
        if isinstance(trigger.on_failure, TopicDestination):
            dead[trigger.name] = TopicDeadLetters(engine())
        elif isinstance(trigger.on_failure, QueueDestination):
            dead[trigger.name] = QueueDeadLetters(client("sqs"))
    return Dispatcher(engine(), found, targets, dead, token=token)


def _token(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


# ---- what woke us -------------------------------------------------------------------------


def stream_work(records: Sequence[Mapping[str, Any]], found: Sequence[Trigger]) -> Work:
    """The (trigger, partition) pairs stream records signal, with LATEST's hint."""
    work: Work = {}
    for record in records:
        if (new := signal(record)) is not None:
            for trigger in (t for t in found if t.topic == new.topic):
                key = (trigger.name, new.partition)
                hint = work.get(key)
                work[key] = new.base_offset if hint is None else min(hint, new.base_offset)
        elif (reset := redrive(record)) is not None:
            for trigger in (t for t in found if (t.topic, t.group) == (reset.topic,
                                                                       reset.group)):
                work.setdefault((trigger.name, reset.partition), None)
    return work


def wakeup_work(records: Sequence[Mapping[str, Any]]) -> Work:
    work: Work = {}
    for record in records:
        body = json.loads(record["body"])
        work[(str(body["trigger"]), int(body["partition"]))] = None
    return work


# ---- doing it -----------------------------------------------------------------------------


def run(work: Work, token: str, remaining_ms: int) -> list[Result]:
    """One session per (trigger, partition), in parallel; wake-ups sent for what is left."""
    if not work:
        return []
    chosen = dispatcher(token)
    budget = min(SESSION_BUDGET_S, max(1.0, (remaining_ms - MARGIN_MS) / 1000))
    deadline = chosen.clock.monotonic() + budget
    known = {k: v for k, v in work.items() if k[0] in chosen.triggers}
    with ThreadPoolExecutor(min(WORKERS, len(known) or 1)) as pool:
        results = list(pool.map(lambda item: chosen.dispatch(
            item[0][0], item[0][1], hint=item[1], deadline=deadline), known.items()))
    wake([(r.trigger, r.partition, r.wake_after_ms) for r in results
          if r.wake_after_ms is not None])
    return results


def wake(items: Sequence[tuple[str, int, int]]) -> None:
    """Send each (trigger, partition) a wake-up after its delay (SQS, at most 15 minutes:
    a longer wait is woken again then)."""
    if not items:
        return
    url = os.environ[WAKEUP_QUEUE_ENV]
    entries = [{"Id": str(n), "MessageBody": json.dumps({"trigger": t, "partition": p}),
                "DelaySeconds": min(MAX_DELAY_S, math.ceil(ms / 1000))}
               for n, (t, p, ms) in enumerate(items)]
    for i in range(0, len(entries), 10):
        answer = client("sqs").send_message_batch(QueueUrl=url, Entries=entries[i:i + 10])
        if answer.get("Failed"):  # Lambda retries the whole event: sessions are idempotent
            raise RuntimeError(f"wake-ups not sent: {answer['Failed']}")


def _measure(results: Sequence[Result]) -> None:
    totals = {"Delivered": sum(r.delivered for r in results),
              "Invocations": sum(r.invocations for r in results),
              "FailedInvocations": sum(r.failed_invocations for r in results),
              "DeadLettered": sum(r.dead_lettered for r in results),
              "Discarded": sum(r.discarded for r in results),
              "Sessions": len(results)}
    for name, value in totals.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for result in results:
        if result.error:
            logger.warning("trigger session ended early", extra={
                "trigger": result.trigger, "partition": result.partition,
                "error": result.error})


def activate(names: Sequence[str]) -> dict[str, Any]:
    """Starting positions everywhere; wake-ups for the backlog."""
    chosen = dispatcher(_token("activate", *names))
    report: dict[str, Any] = {}
    backlog: list[tuple[str, int, int]] = []
    for name in names:
        try:
            partitions = chosen.activate(name)
        except Exception as error:  # the topic may not exist yet: its first append starts it
            report[name] = f"waiting: {type(error).__name__}"
            continue
        report[name] = f"{len(partitions)} partition(s) with a backlog"
        backlog += [(name, p, 0) for p in partitions]
    wake(backlog)
    return report


def custom_resource(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """CloudFormation's custom resource protocol: activate on Create/Update, answer always."""
    metrics.add_metric(name="Activations", unit=MetricUnit.Count, value=1)
    names = [t.name for t in triggers()]
    data: dict[str, Any] = {}
    status, reason = "SUCCESS", "ok"
    if event.get("RequestType") in ("Create", "Update"):
        try:
            data = activate(names)
        except Exception as error:  # never leave the deployment hanging
            status, reason = "FAILED", f"{type(error).__name__}: {error}"[:500]
    body = json.dumps({"Status": status, "Reason": reason,
                       "PhysicalResourceId": event.get("PhysicalResourceId")
                       or f"streamlet-triggers-{os.environ.get('STREAMLET_TABLE_PREFIX', '')}",
                       "StackId": event["StackId"], "RequestId": event["RequestId"],
                       "LogicalResourceId": event["LogicalResourceId"], "Data": data}).encode()
    request = urllib.request.Request(str(event["ResponseURL"]), data=body, method="PUT",
                                     headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30):
        pass
    return {"status": status, "triggers": data}


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Route one invocation to its kind of work."""
    if "RequestType" in event and "ResponseURL" in event:
        return custom_resource(event, context)
    records = event.get("Records") or []
    remaining = int(context.get_remaining_time_in_millis())
    if records and records[0].get("eventSource") == "aws:sqs":
        token = _token(*(r["messageId"] for r in records))
        results = run(wakeup_work(records), token, remaining)
    else:
        token = _token(str(records[0].get("eventID", "")), str(records[-1].get("eventID", ""))) \
            if records else _token("empty")
        results = run(stream_work(records, triggers()), token, remaining)
    _measure(results)
    return {"sessions": len(results), "delivered": sum(r.delivered for r in results),
            "busy": sum(r.busy for r in results)}
