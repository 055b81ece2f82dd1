"""Confluent REST Proxy v2 subscriptions and offset commits of consumer instances.

A subscribed instance is a member of the consumer group ``{group}``, next to SDK
consumers (see :mod:`streamlet.groups.subscriptions` for the stateless membership and
its session timeout). Every request to a subscribed instance is its heartbeat; the records
request (:mod:`functions.v2`) is also its rebalance.

Offsets follow REST Proxy: ``POST .../offsets`` with ``offsets`` commits each ``offset``
as the last record processed, so the group resumes at ``offset + 1`` (REST Proxy's
``OffsetAndMetadata(offset + 1)``); without ``offsets`` it commits the instance's current
positions (the next records it would return) of every partition it owns. ``GET
.../offsets`` answers the committed offset, the next record to read, or -1 if none.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from streamlet.records import TopicPartition
from streamlet.topicconfig import validate_topic_name

from ._runtime import engine
from ._shared import (
    INSTANCE,
    V2_JSON,
    instance,
    leave,
    new_router,
    no_content,
    subscriptions,
    unquoted,
)
from .models import CommitOffsets, Partitions, Subscription

router = new_router()


@router.post(f"{INSTANCE}/subscription")
def subscribe(group: str, name: str, body: Subscription) -> Response[None]:
    """Subscribe to topics or a pattern: 404 for an unknown topic, 409 if assigned."""
    state = engine().instances.get(unquoted(group), unquoted(name))
    subscriptions().subscribe(state, body.topics, body.topic_pattern)
    return no_content()


@router.get(f"{INSTANCE}/subscription")
def subscription(group: str, name: str) -> Response[str]:
    """``{"topics": [...]}``: the topics subscribed to (those a pattern matches now)."""
    state = instance(group, name)
    topics = subscriptions().topic_names(state) if state.subscribed else []
    return Response(200, V2_JSON, json.dumps({"topics": topics}))


@router.delete(f"{INSTANCE}/subscription")
def unsubscribe(group: str, name: str) -> Response[None]:
    """Unsubscribe: release the partitions (others take them at once) and leave the group.

    As Kafka's ``unsubscribe()``, this also clears a manual assignment.
    """
    state = engine().instances.get(unquoted(group), unquoted(name))
    leave(state)
    engine().instances.unsubscribe(state.group, state.name)
    return no_content()


@router.post(f"{INSTANCE}/offsets")
def commit_offsets(group: str, name: str, body: CommitOffsets | None = None
                   ) -> Response[None]:
    """Commit offsets, fenced by lease epoch: 409 if a partition is not (or no longer) owned."""
    state = instance(group, name)
    if body is None or body.offsets is None:
        offsets = {tp: (position, "") for tp, position in state.positions.items()
                   if tp in state.owned}
    else:
        offsets = {TopicPartition(o.topic, o.partition): (o.offset + 1, o.metadata or "")
                   for o in body.offsets}
    subscriptions().commit(state, offsets)
    return no_content()


@router.get(f"{INSTANCE}/offsets")
def committed_offsets(group: str, name: str, body: Partitions | None = None
                      ) -> Response[str]:
    """The group's committed offsets of the partitions in the body (default: the instance's)."""
    state = instance(group, name)
    tps = state.partitions if body is None else [
        TopicPartition(validate_topic_name(r.topic), r.partition) for r in body.partitions]
    rows = [_committed(state.group, tp) for tp in tps]
    return Response(200, V2_JSON, json.dumps({"offsets": rows}))


def _committed(group: str, tp: TopicPartition) -> dict[str, Any]:
    lease = engine().groups.lease(group, tp)
    committed = None if lease is None else lease.committed
    return {"topic": tp.topic, "partition": tp.partition,
            "offset": -1 if committed is None else committed,
            "metadata": "" if lease is None else lease.metadata}
