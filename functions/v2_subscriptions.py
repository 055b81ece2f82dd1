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

Every topic named (subscribed, committed, asked about) must be within the caller's grant;
a ``topic_pattern`` matches only topics the grant may read (:mod:`functions._access`).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from streamlet.records import TopicPartition
from streamlet.topicconfig import validate_topic_name

from ._access import Access, caller_access
from ._runtime import engine
from ._shared import (
    INSTANCE,
    V2_JSON,
    beat,
    instance,
    instances,
    leave,
    new_router,
    no_content,
    owned_instance,
    subscriptions,
)
from .models import CommitOffsets, Partitions, Subscription

router = new_router()


@router.post(f"{INSTANCE}/subscription")
def subscribe(group: str, name: str, body: Subscription) -> Response[None]:
    """Subscribe to topics or a pattern: 403 outside the grant, 404 for an unknown topic,
    409 if assigned, 400 for a pattern RE2 cannot compile."""
    access = _access()
    state = owned_instance(access, group, name)
    subscriptions(access).subscribe(state, body.topics, body.topic_pattern)
    return no_content()


def _access() -> Access:
    return caller_access(router.current_event)


@router.get(f"{INSTANCE}/subscription")
def subscription(group: str, name: str) -> Response[str]:
    """``{"topics": [...]}``: the topics subscribed to (those a pattern matches now)."""
    access = _access()
    state = instance(access, group, name)
    topics = subscriptions(access).topic_names(state) if state.subscribed else []
    return Response(200, V2_JSON, json.dumps({"topics": topics}))


@router.delete(f"{INSTANCE}/subscription")
def unsubscribe(group: str, name: str) -> Response[None]:
    """Unsubscribe: release the partitions (others take them at once) and leave the group.

    As Kafka's ``unsubscribe()``, this also clears a manual assignment.
    """
    access = _access()
    state = owned_instance(access, group, name)
    leave(access, state)
    instances(access).unsubscribe(state.group, state.name)
    return no_content()


@router.post(f"{INSTANCE}/offsets")
def commit_offsets(group: str, name: str, body: CommitOffsets | None = None
                   ) -> Response[None]:
    """Commit offsets, fenced by lease epoch: 409 if a partition is not (or no longer) owned."""
    access = _access()
    state = owned_instance(access, group, name)
    if body is None or body.offsets is None:
        offsets = {tp: (position, "") for tp, position in state.positions.items()
                   if tp in state.owned}
    else:
        offsets = {TopicPartition(o.topic, o.partition): (o.offset + 1, o.metadata or "")
                   for o in body.offsets}
    for tp in offsets:
        access.check_read(validate_topic_name(tp.topic), tp.partition)
    beat(access, state)
    subscriptions(access).commit(state, offsets)
    return no_content()


@router.get(f"{INSTANCE}/offsets")
def committed_offsets(group: str, name: str, body: Partitions | None = None
                      ) -> Response[str]:
    """The group's committed offsets of the partitions in the body (default: the instance's)."""
    access = _access()
    state = owned_instance(access, group, name)
    tps = state.partitions if body is None else [
        TopicPartition(validate_topic_name(r.topic), r.partition) for r in body.partitions]
    for tp in tps:
        access.check_read(tp.topic, tp.partition)
    beat(access, state)
    rows = [_committed(state.group, tp) for tp in tps]
    return Response(200, V2_JSON, json.dumps({"offsets": rows}))


def _committed(group: str, tp: TopicPartition) -> dict[str, Any]:
    lease = engine().groups.lease(group, tp)
    committed = None if lease is None else lease.committed
    return {"topic": tp.topic, "partition": tp.partition,
            "offset": -1 if committed is None else committed,
            "metadata": "" if lease is None else lease.metadata}
