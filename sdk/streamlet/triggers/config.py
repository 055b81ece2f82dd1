"""What a trigger is: Lambda's Kafka event-source-mapping settings, validated, as data.

A :class:`Trigger` binds a topic (optionally only the keys a filter matches) to a target:
a user's function (a Lambda ARN or name on AWS, ``module:function`` or a callable
locally) or a built-in sink (:mod:`streamlet.triggers.sinks`). Every setting has the
name, range and default of Lambda's event source mapping for Kafka, so a mapping moves
over setting by setting:

================================  ======================================================
``batch_size``                    1-10,000 records per invocation (default 100)
``maximum_batching_window_ms``    0-300,000: wait this long for a fuller batch (500)
``starting_position``             TRIM_HORIZON, LATEST or AT_TIMESTAMP (+ timestamp)
``bisect_batch_on_function_error``  split a failing batch in two and retry each half
``maximum_retry_attempts``        -1 (forever) or 0-10,000; -1 with ``on_failure`` is 10
``maximum_record_age_s``          -1 (forever) or 60-604,800: older records go to on_failure
``report_batch_item_failures``    honour ``{"batchItemFailures": [...]}`` responses
``on_failure``                    a Streamlet topic (dead-letter records) or an SQS queue
================================  ======================================================

A trigger reads as the consumer group ``group_id`` (default: its name), so ``streamlet
groups describe`` shows its lag and ``streamlet groups reset-offsets`` re-drives it.

Example:
    >>> t = Trigger("orders-to-billing", "orders", function="billing-fn", batch_size=50,
    ...             on_failure=TopicDestination("orders.dlq"))
    >>> t.group, t.retry_limit
    ('orders-to-billing', 10)
    >>> Trigger.from_json(t.to_json()) == t
    True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from ..errors import InvalidConfig
from ..groups.leases import validate_group
from ..topicconfig import validate_topic_name

MAX_BATCH_SIZE = 10_000
MAX_WINDOW_MS = 300_000
MAX_RETRIES = 10_000
MIN_RECORD_AGE_S, MAX_RECORD_AGE_S = 60, 604_800
RETRIES_WITH_DESTINATION = 10
"""Lambda's rule: infinite retries with an on-failure destination become 10."""
DEFAULT_WINDOW_MS = 500  # Lambda's default for Kafka event sources
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_QUEUE_URL = re.compile(r"https?://[^\s/]+/\d{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?")


class StartingPosition(StrEnum):
    """Where a trigger starts in partitions it has no committed offset for."""

    TRIM_HORIZON = "TRIM_HORIZON"
    """The oldest record still in the log."""
    LATEST = "LATEST"
    """Records appended after the trigger started (its first signal, or its activation)."""
    AT_TIMESTAMP = "AT_TIMESTAMP"
    """The first record at or after ``starting_position_timestamp_ms``."""


@dataclass(frozen=True)
class TopicDestination:
    """Failed records are appended to this Streamlet topic, as they were, with headers
    ``streamlet.dlq.topic``, ``.partition``, ``.offset``, ``.error``, ``.attempts`` and
    ``.trigger`` saying where they came from and why they failed."""

    topic: str
    kind: str = field(default="topic", init=False)


@dataclass(frozen=True)
class QueueDestination:
    """One JSON message per failed record (its coordinates, base64 key and value, the
    error) is sent to this SQS queue (a FIFO queue keeps each partition's order)."""

    queue_url: str
    kind: str = field(default="sqs", init=False)


Destination = TopicDestination | QueueDestination


def _destination(data: Mapping[str, Any] | None) -> Destination | None:
    if data is None:
        return None
    if data.get("kind") == "topic":
        return TopicDestination(str(data["topic"]))
    if data.get("kind") == "sqs":
        return QueueDestination(str(data["queue_url"]))
    raise InvalidConfig(f"Unknown on_failure destination {dict(data)!r}.")


@dataclass(frozen=True)
class KeyFilter:
    """Which keys a trigger delivers: exact keys, or prefixes written ``prefix*``.

    Records whose key matches none (keyless records included) are skipped: their offsets
    are committed without an invocation, as Lambda does with filtered-out records.

    Example:
        >>> f = KeyFilter.parse("user-*,admin")
        >>> f.matches(b"user-42"), f.matches(b"admin"), f.matches(b"admins"), f.matches(None)
        (True, True, False, False)
    """

    exact: frozenset[bytes] = frozenset()
    prefixes: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> KeyFilter:
        parts = [p for p in spec.split(",") if p]
        if not parts:
            raise InvalidConfig(f"key_filter {spec!r} names no key.")
        exact = frozenset(p.encode() for p in parts if not p.endswith("*"))
        prefixes = tuple(p[:-1].encode() for p in parts if p.endswith("*"))
        return cls(exact, prefixes)

    def matches(self, key: bytes | None) -> bool:
        if key is None:
            return False
        return key in self.exact or any(key.startswith(p) for p in self.prefixes)


@dataclass(frozen=True)
class Trigger:
    """One topic bound to one target, with Lambda's Kafka event-source-mapping semantics.

    Exactly one of ``function`` (a Lambda function ARN or name on AWS; ``module:function``
    locally) and ``sink`` (a :mod:`~streamlet.triggers.sinks` configuration) is set.
    """

    name: str
    topic: str
    function: str | None = None
    sink: Mapping[str, Any] | None = None
    group_id: str | None = None
    batch_size: int = 100
    maximum_batching_window_ms: int = DEFAULT_WINDOW_MS
    starting_position: StartingPosition = StartingPosition.LATEST
    starting_position_timestamp_ms: int | None = None
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    report_batch_item_failures: bool = False
    on_failure: Destination | None = None
    key_filter: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InvalidConfig(f"Trigger name {self.name!r}: 1 to 64 of [A-Za-z0-9._-].")
        validate_topic_name(self.topic)
        validate_group(self.group)
        if (self.function is None) == (self.sink is None):
            raise InvalidConfig(f"Trigger '{self.name}' needs exactly one of function= "
                                "and sink=.")
        object.__setattr__(self, "starting_position", StartingPosition(self.starting_position))
        self._check_ranges()
        if isinstance(self.on_failure, TopicDestination):
            validate_topic_name(self.on_failure.topic)
            if self.on_failure.topic == self.topic:
                raise InvalidConfig(f"Trigger '{self.name}' cannot dead-letter into the "
                                    "topic it reads.")
        if isinstance(self.on_failure, QueueDestination) and \
                not _QUEUE_URL.fullmatch(self.on_failure.queue_url):
            raise InvalidConfig(f"Not an SQS queue URL: {self.on_failure.queue_url!r}.")
        if self.key_filter is not None:
            KeyFilter.parse(self.key_filter)

    def _check_ranges(self) -> None:
        checks = [
            ("batch_size", self.batch_size, 1, MAX_BATCH_SIZE),
            ("maximum_batching_window_ms", self.maximum_batching_window_ms, 0, MAX_WINDOW_MS),
            ("maximum_retry_attempts", self.maximum_retry_attempts, -1, MAX_RETRIES),
        ]
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidConfig(f"Trigger '{self.name}': {name}={value!r}, expected an "
                                    f"integer from {low} to {high}.")
        age = self.maximum_record_age_s
        if age != -1 and not MIN_RECORD_AGE_S <= age <= MAX_RECORD_AGE_S:
            raise InvalidConfig(f"Trigger '{self.name}': maximum_record_age_s={age!r}, "
                                f"expected -1 or {MIN_RECORD_AGE_S} to {MAX_RECORD_AGE_S}.")
        at = self.starting_position is StartingPosition.AT_TIMESTAMP
        if at != (self.starting_position_timestamp_ms is not None):
            raise InvalidConfig(f"Trigger '{self.name}': starting_position_timestamp_ms goes "
                                "with starting_position=AT_TIMESTAMP, and only with it.")

    @property
    def group(self) -> str:
        """The consumer group the trigger commits to."""
        return self.group_id or self.name

    @property
    def retry_limit(self) -> int | None:
        """Retries after the first attempt before records go to ``on_failure`` (None:
        forever)."""
        if self.maximum_retry_attempts == -1:
            return RETRIES_WITH_DESTINATION if self.on_failure is not None else None
        return self.maximum_retry_attempts

    @property
    def filter(self) -> KeyFilter | None:
        return None if self.key_filter is None else KeyFilter.parse(self.key_filter)

    def with_function(self, function: str) -> Trigger:
        return replace(self, function=function)

    # ---- JSON (what the CDK construct hands the dispatcher) ------------------------------

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["starting_position"] = str(self.starting_position)
        out["on_failure"] = None if self.on_failure is None else asdict(self.on_failure)
        out["sink"] = None if self.sink is None else dict(self.sink)
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidConfig(f"Unknown trigger settings: {', '.join(sorted(unknown))}.")
        values = dict(data)
        values["on_failure"] = _destination(values.get("on_failure"))
        return cls(**values)


def dumps(triggers: list[Trigger]) -> str:
    """The compact JSON list the dispatcher reads (``STREAMLET_TRIGGERS``)."""
    return json.dumps([t.to_json() for t in triggers], separators=(",", ":"), sort_keys=True)


def loads(text: str) -> list[Trigger]:
    """Triggers from :func:`dumps`; names must be unique."""
    found = [Trigger.from_json(item) for item in json.loads(text or "[]")]
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise InvalidConfig("Trigger names must be unique.")
    return found
