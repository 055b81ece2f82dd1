"""Native consumer-group routes: the SDK's GroupOps over HTTP, one route per operation.

Thin adapters over ``engine.groups`` (JSON in, JSON out, shapes in
:mod:`streamlet.wire`), so ``Consumer(group_id=...)`` and the Admin group
operations behave over ``https://`` exactly as over ``direct://``. The membership
operations (read the group, heartbeat, take/release leases, fenced commits) are served by
the consume function; listing, resetting and deleting groups by the admin function.
Every engine error keeps its status and body (a stale commit is 409 ``commit_failed``).

The store acts for the caller (``_shared.groups``): members it creates and leases it takes
are bound to its IAM principal, so another principal's heartbeat, take, release, commit or
removal of them is 403; every topic a route names (in its path or body) must be within the
caller's grant (403 naming it) and exist (404), before anything is written.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field, StrictInt, StrictStr

from streamlet.errors import InvalidRequest
from streamlet.groups.leases import Lease
from streamlet.records import TopicPartition
from streamlet.topicconfig import validate_topic_name
from streamlet.wire import lease_json, member_from_json, snapshot_json

from ._access import Access, caller_access
from ._runtime import engine
from ._shared import groups, new_router, no_content, unquoted
from .models import INT64_MAX, Offset, Partitions, TopicPartitionRef

consume_router = new_router()
admin_router = new_router()
GROUP = "/v1/groups/<group>"
LEASE = f"{GROUP}/leases/<topic>/<partition>"
MemberId = Annotated[StrictStr, Field(min_length=1, max_length=512)]
Counter = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
Millis = Annotated[StrictInt, Field(ge=0, le=24 * 3600 * 1000)]


class LeaseState(BaseModel):
    """A lease as the client last saw it (its partition is in the path)."""

    owner: StrictStr | None = None
    epoch: Counter
    committed: Offset | None = None
    metadata: StrictStr = ""
    committed_ms: Counter = 0


class SeenLease(LeaseState, TopicPartitionRef):
    """A lease as the client last saw it, with its partition (for resets)."""


class MemberBody(BaseModel):
    """``POST .../members/heartbeat``: who the member is (the counter is the server's)."""

    member_id: MemberId
    client_id: Annotated[StrictStr, Field(max_length=1024)] = ""
    host: Annotated[StrictStr, Field(max_length=1024)] = ""
    instance_id: Annotated[StrictStr, Field(max_length=512)] = ""
    topics: list[Annotated[StrictStr, Field(max_length=249)]] = Field(
        default_factory=list, max_length=1000)
    heartbeat_ms: Millis = 3000
    session_ms: Millis = 0


class TakeBody(BaseModel):
    member_id: MemberId
    seen: LeaseState


class ReleaseBody(BaseModel):
    member_id: MemberId
    epoch: Counter


class RemoveBody(BaseModel):
    member_id: MemberId
    seen_beat: Counter | None = None
    """Remove only if the member's counter is still this (a dead member's last beat)."""


class CommitEntry(TopicPartitionRef):
    epoch: Counter
    offset: Offset
    metadata: Annotated[StrictStr, Field(max_length=4096)] = ""


class CommitBody(BaseModel):
    member_id: MemberId
    offsets: list[CommitEntry] = Field(max_length=1000)


class ResetEntry(TopicPartitionRef):
    offset: Offset


class ResetBody(BaseModel):
    """``PUT /v1/groups/{group}/offsets``: new committed offsets and the leases seen."""

    offsets: list[ResetEntry] = Field(max_length=1000)
    seen: list[SeenLease] = Field(default_factory=list, max_length=1000)


def _tp(access: Access, topic: str, partition: int) -> TopicPartition:
    """A partition named in a request: its shape, then the caller's grant (not existence:
    the store checks that where it matters)."""
    if partition < 0:
        raise InvalidRequest(f"Partition {partition} of topic '{topic}' must be >= 0.")
    access.check_read(validate_topic_name(topic), partition)
    return TopicPartition(topic, partition)


def _consumer() -> Access:
    return caller_access(consume_router.current_event)


@consume_router.get(GROUP)
def snapshot(group: str) -> dict[str, Any]:
    """Every lease and member of the group (one strongly consistent read)."""
    return snapshot_json(engine().groups.snapshot(unquoted(group)))


@consume_router.get(LEASE)
def lease(group: str, topic: str, partition: int) -> dict[str, Any]:
    """``{"lease": {...}}``, or ``{"lease": null}`` if the partition has no lease item."""
    found = engine().groups.lease(unquoted(group), _tp(_consumer(), unquoted(topic), partition))
    return {"lease": None if found is None else lease_json(found)}


@consume_router.post(f"{GROUP}/leases")
def ensure_leases(group: str, body: Partitions) -> Response[None]:
    """Create the missing lease items (unowned, epoch 0); existing ones stay as they are."""
    access = _consumer()
    tps = [_tp(access, ref.topic, ref.partition) for ref in body.partitions]
    groups(access).ensure_leases(unquoted(group), tps)
    return no_content()


@consume_router.post(f"{LEASE}/take")
def take(group: str, topic: str, partition: int, body: TakeBody) -> dict[str, Any]:
    """Take the lease last seen as ``seen``: ``{"lease": null}`` if someone moved it first."""
    access = _consumer()
    tp = _tp(access, unquoted(topic), partition)
    seen = Lease(tp, **body.seen.model_dump())
    taken = groups(access).take(unquoted(group), tp, body.member_id, seen)
    return {"lease": None if taken is None else lease_json(taken)}


@consume_router.post(f"{LEASE}/release")
def release(group: str, topic: str, partition: int, body: ReleaseBody) -> Response[None]:
    """Give the lease up if it is still the member's at ``epoch`` (else a no-op)."""
    access = _consumer()
    groups(access).release(unquoted(group), _tp(access, unquoted(topic), partition),
                           body.member_id, body.epoch)
    return no_content()


@consume_router.post(f"{GROUP}/members/heartbeat")
def heartbeat(group: str, body: MemberBody) -> dict[str, int]:
    """Create or renew the member item: ``{"beat": n}``, its new counter."""
    access = _consumer()
    member = member_from_json(body.model_dump())
    for topic in member.topics:
        access.check_read(validate_topic_name(topic))
    return {"beat": groups(access).heartbeat(unquoted(group), member)}


@consume_router.post(f"{GROUP}/members/remove")
def remove_member(group: str, body: RemoveBody) -> Response[None]:
    """Delete a member item (a leaving member, or a dead one still at ``seen_beat``)."""
    groups(_consumer()).remove_member(unquoted(group), body.member_id, body.seen_beat)
    return no_content()


@consume_router.post(f"{GROUP}/commits")
def commit(group: str, body: CommitBody) -> Response[None]:
    """Commit offsets atomically, fenced by owner and epoch (409 commit_failed if stale)."""
    access = _consumer()
    offsets = {_tp(access, e.topic, e.partition): (e.epoch, e.offset, e.metadata)
               for e in body.offsets}
    groups(access).commit(unquoted(group), body.member_id, offsets)
    return no_content()


@admin_router.get("/v1/groups")
def list_groups() -> dict[str, list[str]]:
    """``{"groups": [...]}``: every group id with state, sorted."""
    return {"groups": engine().groups.list_groups()}


@admin_router.put(f"{GROUP}/offsets")
def reset_offsets(group: str, body: ResetBody) -> Response[None]:
    """Set committed offsets (even backwards), fencing the owners of the leases seen."""
    access = caller_access(admin_router.current_event)
    seen = {}
    for ref in body.seen:
        tp = _tp(access, ref.topic, ref.partition)
        seen[tp] = Lease(tp, **ref.model_dump(exclude={"topic", "partition"}))
    offsets = {_tp(access, e.topic, e.partition): e.offset for e in body.offsets}
    groups(access).reset(unquoted(group), offsets, seen)
    return no_content()


@admin_router.delete(GROUP)
def delete_group(group: str) -> Response[None]:
    """Delete every item of the group (404 group_not_found if it has none)."""
    engine().groups.delete(unquoted(group))
    return no_content()
