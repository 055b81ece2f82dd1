"""The state of a REST Proxy v2 consumer instance: a group member that keeps no process.

The engine stores it (``streamlet.engine.instances``, one item per instance) and
:mod:`streamlet.groups.subscriptions` runs its group membership from it; the handlers
in ``functions/`` read and update it on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import TopicPartition

DEFAULT_SESSION_MS = 30_000
"""A subscribed instance's group session (see :mod:`streamlet.groups.subscriptions`)."""


@dataclass(frozen=True)
class ConsumerInstance:
    """One v2 consumer instance's state.

    ``owned`` maps the partitions whose leases a subscribed instance holds to their lease
    epochs; ``seen`` is its liveness tracker's memory (member -> (beat, wall-clock second
    the beat last moved)).
    """

    group: str
    name: str
    format: str
    auto_offset_reset: str
    request_timeout_ms: int = 1000
    assignments: tuple[TopicPartition, ...] = ()
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    member_id: str = ""
    session_ms: int = DEFAULT_SESSION_MS
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    owned: dict[TopicPartition, int] = field(default_factory=dict)
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    principal: str = ""
    """The IAM principal that created the instance (empty: created without one)."""

    @property
    def subscribed(self) -> bool:
        return bool(self.topics) or self.topic_pattern is not None

    @property
    def partitions(self) -> tuple[TopicPartition, ...]:
        """What the instance reads: its owned leases if subscribed, else its assignment."""
        return tuple(sorted(self.owned)) if self.subscribed else self.assignments
