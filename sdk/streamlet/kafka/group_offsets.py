"""Kafka clients' group offsets and group administration: OffsetCommit, OffsetFetch,
DescribeGroups, ListGroups, DeleteGroups (the coordinator's other half).

Offsets are the group's lease items, shared with Streamlet's SDK (``streamlet groups
describe``, lag and reset-offsets see them). A commit from a member is fenced by member
id and generation in the same DynamoDB transaction that writes the offsets; a standalone
commit (generation -1, no member id: ``assign()`` + ``commit()``) is accepted while the
group has no classic generation and no SDK members.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import GroupNotFound, StreamletError
from ..records import TopicPartition
from . import auth, codes
from .coordinator import COMPLETING, Coordinator, _now_ms
from .protocol import ApiKey, response_class

if TYPE_CHECKING:
    from .auth import Session
    from .protocol import Request


class GroupOffsets:
    """Handlers of the offset and group-administration APIs, beside a :class:`Coordinator`."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.gw = coordinator.gw
        self.store = coordinator.store
        self._allowed = coordinator._allowed

    def handlers(self) -> dict[int, Any]:
        return {ApiKey.OffsetCommit: self.offset_commit, ApiKey.OffsetFetch: self.offset_fetch,
                ApiKey.DescribeGroups: self.describe, ApiKey.ListGroups: self.list_groups,
                ApiKey.DeleteGroups: self.delete_groups}

    # ---- offsets --------------------------------------------------------------------------

    async def offset_commit(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.OffsetCommit, request.api_version)
        topic_cls = cls.OffsetCommitResponseTopic

        def answer(code_of: Callable[[str, int], int]) -> Any:
            return cls(throttle_time_ms=0, topics=[topic_cls(name=t.name, partitions=[
                topic_cls.OffsetCommitResponsePartition(
                    partition_index=p.partition_index, error_code=code_of(t.name,
                                                                          p.partition_index))
                for p in t.partitions]) for t in body.topics])

        if not self._allowed(session, body.group_id):
            return answer(lambda t, p: codes.GROUP_AUTHORIZATION_FAILED)
        denied = {(t.name, p.partition_index) for t in body.topics for p in t.partitions
                  if not self.gw.auth.allows(session, *auth.read_route(t.name,
                                                                         p.partition_index))}
        offsets = {TopicPartition(t.name, p.partition_index):
                   (p.committed_offset, p.committed_metadata or "")
                   for t in body.topics for p in t.partitions
                   if (t.name, p.partition_index) not in denied}
        code = await self._commit(body, offsets)
        return answer(lambda t, p: codes.TOPIC_AUTHORIZATION_FAILED if (t, p) in denied
                      else code)

    async def _commit(self, body: Any, offsets: dict[TopicPartition, tuple[int, str]]) -> int:
        if not offsets:
            return codes.NONE
        generation = body.generation_id_or_member_epoch
        standalone = generation < 0 and not body.member_id
        if not standalone:
            group = await self.gw.call(self.store.load, body.group_id)
            if group is None or body.member_id not in group.members:
                return codes.UNKNOWN_MEMBER_ID
            if generation != group.generation:
                return codes.ILLEGAL_GENERATION
            if group.state == COMPLETING:
                return codes.REBALANCE_IN_PROGRESS
        else:
            snapshot = await self.gw.call(self.gw.engine.groups.snapshot, body.group_id)
            if snapshot.members:
                return codes.INCONSISTENT_GROUP_PROTOCOL
        ok = await self.gw.call(self.store.commit, body.group_id, offsets, _now_ms(),
                                None if standalone else generation, body.member_id or "")
        if ok:
            return codes.NONE
        return codes.UNKNOWN_MEMBER_ID if standalone else codes.ILLEGAL_GENERATION

    async def offset_fetch(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.OffsetFetch, request.api_version)
        topic_cls = cls.OffsetFetchResponseTopic
        part_cls = topic_cls.OffsetFetchResponsePartition
        if not self._allowed(session, body.group_id):
            return cls(throttle_time_ms=0, topics=[],
                       error_code=codes.GROUP_AUTHORIZATION_FAILED)
        snapshot = await self.gw.call(self.gw.engine.groups.snapshot, body.group_id)
        committed = {tp: lease for tp, lease in snapshot.leases.items()
                     if lease.committed is not None}
        if body.topics is None:
            wanted: dict[str, list[int]] = {}
            for tp in sorted(committed, key=lambda t: (t.topic, t.partition)):
                wanted.setdefault(tp.topic, []).append(tp.partition)
        else:
            wanted = {t.name: list(t.partition_indexes) for t in body.topics}
        topics = []
        for name, partitions in wanted.items():
            allowed = self.gw.auth.allows(session, *auth.read_route(name))
            parts = []
            for p in partitions:
                lease = committed.get(TopicPartition(name, p))
                parts.append(part_cls(
                    partition_index=p, committed_offset=lease.committed if lease and allowed
                    else -1, committed_leader_epoch=-1,
                    metadata=lease.metadata if lease and allowed else "",
                    error_code=codes.NONE if allowed else codes.TOPIC_AUTHORIZATION_FAILED))
            topics.append(topic_cls(name=name, partitions=parts))
        return cls(throttle_time_ms=0, topics=topics, error_code=codes.NONE)

    # ---- administration -------------------------------------------------------------------

    async def describe(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.DescribeGroups, request.api_version)
        group_cls = cls.DescribedGroup

        async def one(group_id: str) -> Any:
            if not self._allowed(session, group_id):
                return group_cls(error_code=codes.GROUP_AUTHORIZATION_FAILED, group_id=group_id,
                                 group_state="", protocol_type="", protocol_data="",
                                 members=[])
            group = await self.gw.call(self.store.load, group_id)
            if group is None or not group.members:
                snapshot = await self.gw.call(self.gw.engine.groups.snapshot, group_id)
                state = "Stable" if snapshot.members else \
                    ("Empty" if snapshot.leases or group is not None else "Dead")
                return group_cls(error_code=0, group_id=group_id, group_state=state,
                                 protocol_type="streamlet" if snapshot.members else "consumer",
                                 protocol_data="", members=[group_cls.DescribedGroupMember(
                                     member_id=m.member_id, group_instance_id=m.instance_id
                                     or None, client_id=m.client_id, client_host=m.host,
                                     member_metadata=b"", member_assignment=b"")
                                     for m in snapshot.members.values()])
            return group_cls(
                error_code=0, group_id=group_id, group_state=group.state,
                protocol_type=group.protocol_type or "", protocol_data=group.protocol or "",
                members=[group_cls.DescribedGroupMember(
                    member_id=m.member_id, group_instance_id=m.instance_id,
                    client_id=m.client_id, client_host=m.host,
                    member_metadata=m.metadata(group.protocol),
                    member_assignment=base64.b64decode(m.assignment))
                    for m in group.members.values()])

        groups = await asyncio.gather(*(one(g) for g in request.body.groups))
        return cls(throttle_time_ms=0, groups=list(groups))

    async def list_groups(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.ListGroups, request.api_version)
        names = await self.gw.call(self.gw.engine.groups.list_groups)
        names = [n for n in names if self._allowed(session, n)]
        states: dict[str, str] = {}
        if request.api_version >= 4:
            for name in names:
                group = await self.gw.call(self.store.load, name)
                states[name] = group.state if group is not None else "Empty"
        wanted = set(request.body.states_filter or []) if request.api_version >= 4 else set()
        return cls(throttle_time_ms=0, error_code=0, groups=[
            cls.ListedGroup(group_id=n, protocol_type="consumer",
                            group_state=states.get(n, ""))
            for n in names if not wanted or states.get(n) in wanted])

    async def delete_groups(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.DeleteGroups, request.api_version)

        async def one(group_id: str) -> Any:
            if not self.gw.auth.allows(session, "DELETE", f"/v1/groups/{group_id}"):
                return cls.DeletableGroupResult(group_id=group_id,
                                                error_code=codes.GROUP_AUTHORIZATION_FAILED)
            group = await self.gw.call(self.store.load, group_id)
            snapshot = await self.gw.call(self.gw.engine.groups.snapshot, group_id)
            if (group is not None and group.members) or snapshot.members:
                return cls.DeletableGroupResult(group_id=group_id,
                                                error_code=codes.NON_EMPTY_GROUP)
            try:
                await self.gw.call(self.gw.engine.groups.delete, group_id)
            except GroupNotFound:
                return cls.DeletableGroupResult(group_id=group_id,
                                                error_code=codes.GROUP_ID_NOT_FOUND)
            except StreamletError as error:
                return cls.DeletableGroupResult(group_id=group_id,
                                                error_code=codes.code_for(error))
            return cls.DeletableGroupResult(group_id=group_id, error_code=codes.NONE)

        results = await asyncio.gather(*(one(g) for g in request.body.groups_names))
        return cls(throttle_time_ms=0, results=list(results))
