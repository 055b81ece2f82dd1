"""The classic group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, commits).

Kafka's classic protocol with client-side assignors, its state in DynamoDB
(:mod:`streamlet.engine.kafka_groups`), so any gateway serves any member and a gateway
can die mid-rebalance. What a broker keeps in memory and times with its own timers, this
coordinator reads, changes and writes back compare-and-set, and a waiting JoinGroup or
SyncGroup polls (and is woken at once by changes this gateway makes):

- **JoinGroup** adds or updates the member and, unless one is under way, starts a
  rebalance (``PreparingRebalance``, a new *round*, a deadline at the longest rebalance
  timeout; a new group waits ``initial_delay_ms`` for more members, like Kafka's
  ``group.initial.rebalance.delay.ms``). Whichever request first sees every member
  rejoined (or the deadline passed, dropping those that did not) forms the next
  generation: leader, common protocol, ``CompletingRebalance``. Each waiting JoinGroup
  then answers; the leader gets every member's metadata.
- **SyncGroup** from the leader stores the assignments (``Stable``); the others wait for
  them. A member that missed the generation gets ILLEGAL_GENERATION or
  REBALANCE_IN_PROGRESS, exactly as from a broker.
- **Heartbeat** records the member's liveness (one UpdateItem) and sweeps the group:
  members silent for their session timeout are removed and a rebalance starts; the
  others learn it from REBALANCE_IN_PROGRESS and rejoin. Liveness is judged on wall-clock
  times written by the gateways (NTP-synchronised hosts; a skew of a few hundred
  milliseconds against session timeouts of 10 s or more).
- **OffsetCommit** (:mod:`.group_offsets`) is fenced by member and generation in the same
  DynamoDB transaction that writes the offsets (to the group's lease items, shared with
  Streamlet's SDK).

A group is served either to Kafka clients or to Streamlet SDK consumers at a time: a
JoinGroup for a group with SDK members is refused with INCONSISTENT_GROUP_PROTOCOL, and a
new SDK member of a group whose Kafka members are within their sessions gets GroupActive
naming them (``GroupStore.heartbeat``). Their committed offsets are the same items either
way, so a group can move from one kind of client to the other once the first has left.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.kafka_groups import ClassicGroup, ClassicMember
from ..errors import StreamletError
from ..groups.leases import validate_group
from . import auth, codes
from .protocol import ApiKey, response_class

if TYPE_CHECKING:
    from .auth import Session
    from .host import Host
    from .protocol import Request

log = logging.getLogger("streamlet.kafka.groups")

EMPTY, PREPARING, COMPLETING, STABLE = "Empty", "PreparingRebalance", "CompletingRebalance", \
    "Stable"
INITIAL_DELAY_MS = 1000
POLL_S = 0.1
Outcome = tuple[int, Any]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Coordinator:
    """Handlers of the group APIs."""

    def __init__(self, gateway: Host, initial_delay_ms: int = INITIAL_DELAY_MS) -> None:
        self.gw = gateway
        self.store = gateway.engine.kafka_groups
        self.initial_delay_ms = initial_delay_ms
        self._changed: dict[str, asyncio.Event] = {}

    def handlers(self) -> dict[int, Any]:
        return {ApiKey.FindCoordinator: self.find_coordinator, ApiKey.JoinGroup: self.join,
                ApiKey.SyncGroup: self.sync, ApiKey.Heartbeat: self.heartbeat,
                ApiKey.LeaveGroup: self.leave}

    # ---- plumbing -------------------------------------------------------------------------

    def _allowed(self, session: Session, group: str) -> bool:
        return self.gw.auth.allows(session, *auth.group_route(group))

    async def _update(self, group_id: str, change: Callable[[ClassicGroup], Outcome]
                      ) -> Outcome:
        """Load, apply ``change`` (which returns (error code, value) and edits the group in
        place when it changes something) and save compare-and-set; again on a conflict."""
        for _ in range(50):
            group = await self.gw.call(self.store.load, group_id) or ClassicGroup(group_id)
            before = group.to_json()
            outcome = change(group)
            if group.to_json() == before:
                return outcome
            if await self.gw.call(self.store.save, group):
                self._notify(group_id)
                return outcome
        return codes.COORDINATOR_NOT_AVAILABLE, None

    def _notify(self, group_id: str) -> None:
        event = self._changed.pop(group_id, None)
        if event is not None:
            event.set()

    async def _pause(self, group_id: str) -> None:
        event = self._changed.setdefault(group_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), POLL_S)

    # ---- group state machine (pure edits of a loaded group) -------------------------------

    def _start_rebalance(self, group: ClassicGroup, now: int) -> None:
        if group.state == PREPARING:
            return
        initial = group.state == EMPTY
        group.state, group.round = PREPARING, group.round + 1
        longest = max((m.rebalance_ms for m in group.members.values()), default=0)
        group.deadline_ms = now + longest
        group.ready_ms = now + (self.initial_delay_ms if initial else 0)

    def _expire(self, group: ClassicGroup, now: int) -> None:
        """Drop members silent past their session timeout (not those waiting in a join)."""
        dead = [m for m in group.members.values()
                if m.beat_ms + m.session_ms < now
                and not (group.state == PREPARING and m.joined == group.round)]
        for member in dead:
            log.info("group %s: member %s expired", group.group_id, member.member_id)
            del group.members[member.member_id]
        if dead:
            self._after_departure(group, now)

    def _after_departure(self, group: ClassicGroup, now: int) -> None:
        if not group.members:
            group.state, group.leader, group.protocol = EMPTY, None, None
            group.protocol_type = None
        elif group.state != PREPARING:
            self._start_rebalance(group, now)

    def _try_complete(self, group: ClassicGroup, now: int) -> None:
        """Form the next generation once everyone rejoined (or the deadline passed)."""
        if group.state != PREPARING:
            return
        joined = [m for m in group.members.values() if m.joined == group.round]
        everyone = len(joined) == len(group.members)
        if not (everyone and now >= group.ready_ms) and now < group.deadline_ms:
            return
        if not joined:
            group.members.clear()
            self._after_departure(group, now)
            return
        group.members = {m.member_id: m for m in joined}
        group.generation += 1
        group.formed = group.round
        group.protocol = _common_protocol(joined)
        if group.leader not in group.members:
            group.leader = joined[0].member_id
        for member in joined:
            member.assignment, member.beat_ms = "", now
        group.state = COMPLETING

    # ---- FindCoordinator ------------------------------------------------------------------

    async def find_coordinator(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.FindCoordinator, request.api_version)
        host, port = self.gw.advertised
        if getattr(request.body, "key_type", 0) == 1:  # a transactional id: every gateway
            code = codes.NONE if self.gw.auth.allows(
                session, *auth.transaction_route(request.body.key)) \
                else codes.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        else:
            code = codes.NONE if self._allowed(session, request.body.key) \
                else codes.GROUP_AUTHORIZATION_FAILED
        return cls(throttle_time_ms=0, error_code=code, error_message=None,
                   node_id=self.gw.node_id, host=host, port=port)

    # ---- JoinGroup ------------------------------------------------------------------------

    async def join(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.JoinGroup, request.api_version)

        def answer(code: int, member_id: str = "", group: ClassicGroup | None = None) -> Any:
            out = cls(throttle_time_ms=0, error_code=code, generation_id=-1,
                      protocol_type=None, protocol_name=None, leader="", member_id=member_id,
                      members=[], skip_assignment=False)
            if group is not None:
                out.generation_id, out.protocol_name = group.generation, group.protocol
                out.protocol_type, out.leader = group.protocol_type, group.leader or ""
                if group.leader == member_id:
                    out.members = [cls.JoinGroupResponseMember(
                        member_id=m.member_id, group_instance_id=m.instance_id,
                        metadata=m.metadata(group.protocol)) for m in group.members.values()]
            return out

        code = await self._join_checks(session, body)
        if code != codes.NONE:
            return answer(code, body.member_id)
        member_id = body.member_id or f"{request.client_id or 'member'}-{uuid.uuid4()}"
        if not body.member_id and request.api_version >= 4 and body.group_instance_id is None:
            return answer(codes.MEMBER_ID_REQUIRED, member_id)
        member = ClassicMember(
            member_id, request.client_id or "", session.peer, body.group_instance_id,
            body.session_timeout_ms,
            body.rebalance_timeout_ms if request.api_version >= 1 and
            body.rebalance_timeout_ms > 0 else body.session_timeout_ms,
            [(p.name, base64.b64encode(bytes(p.metadata)).decode()) for p in body.protocols])

        def add(group: ClassicGroup) -> Outcome:
            return self._admit(group, member, body.protocol_type, _now_ms())

        code, round_ = await self._update(body.group_id, add)
        if code != codes.NONE:
            return answer(code, member_id)
        return await self._await_generation(body.group_id, member_id, round_, answer)

    def _admit(self, group: ClassicGroup, member: ClassicMember, protocol_type: str,
               now: int) -> Outcome:
        """``member`` joins (or rejoins) ``group``: (error code, the round it joined)."""
        self._expire(group, now)
        if group.members and group.protocol_type != protocol_type:
            return codes.INCONSISTENT_GROUP_PROTOCOL, None
        if group.members and not _common_protocol([*group.members.values(), member]):
            return codes.INCONSISTENT_GROUP_PROTOCOL, None
        if member.instance_id is not None:
            for other in list(group.members.values()):
                if other.instance_id == member.instance_id and \
                        other.member_id != member.member_id:
                    del group.members[other.member_id]  # a restarted static member
        group.protocol_type = protocol_type
        # a member before the rebalance starts: its rebalance timeout counts for the
        # deadline (the first member of a new group waits the initial delay for others)
        group.members[member.member_id] = member
        self._start_rebalance(group, now)
        member.joined, member.beat_ms = group.round, now
        self._try_complete(group, now)
        return codes.NONE, group.round

    async def _join_checks(self, session: Session, body: Any) -> int:
        try:
            validate_group(body.group_id)
        except StreamletError:
            return codes.INVALID_GROUP_ID
        if not self._allowed(session, body.group_id):
            return codes.GROUP_AUTHORIZATION_FAILED
        if not 1000 <= body.session_timeout_ms <= 30 * 60_000:
            return codes.INVALID_SESSION_TIMEOUT
        if not body.protocols:
            return codes.INCONSISTENT_GROUP_PROTOCOL
        snapshot = await self.gw.call(self.gw.engine.groups.snapshot, body.group_id)
        if snapshot.members:
            log.warning("group %s has Streamlet SDK members: Kafka clients refused",
                        body.group_id)
            return codes.INCONSISTENT_GROUP_PROTOCOL
        return codes.NONE

    async def _await_generation(self, group_id: str, member_id: str, round_: int,
                                answer: Callable[..., Any]) -> Any:
        while True:
            group = await self.gw.call(self.store.load, group_id)
            if group is None or member_id not in group.members:
                return answer(codes.UNKNOWN_MEMBER_ID, member_id)
            if group.formed >= round_ and group.state in (COMPLETING, STABLE):
                return answer(codes.NONE, member_id, group)
            if group.state == PREPARING and group.round > round_:
                round_ = group.round  # a newer rebalance started: we take part in it

            def complete(g: ClassicGroup) -> Outcome:
                now, me = _now_ms(), g.members.get(member_id)
                if me is not None and g.state == PREPARING and me.joined != g.round:
                    me.joined, me.beat_ms = g.round, now  # still waiting: in this round too
                self._expire(g, now)  # a dead member that will never rejoin
                self._try_complete(g, now)
                return codes.NONE, None

            await self._update(group_id, complete)
            await self._pause(group_id)

    # ---- SyncGroup ------------------------------------------------------------------------

    async def sync(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.SyncGroup, request.api_version)

        def answer(code: int, group: ClassicGroup | None = None, data: bytes = b"") -> Any:
            return cls(throttle_time_ms=0, error_code=code,
                       protocol_type=group.protocol_type if group else None,
                       protocol_name=group.protocol if group else None, assignment=data)

        if not self._allowed(session, body.group_id):
            return answer(codes.GROUP_AUTHORIZATION_FAILED)
        assignments = {a.member_id: base64.b64encode(bytes(a.assignment)).decode()
                       for a in body.assignments}

        def check(group: ClassicGroup) -> Outcome:
            if body.member_id not in group.members:
                return codes.UNKNOWN_MEMBER_ID, None
            if body.generation_id != group.generation:
                return codes.ILLEGAL_GENERATION, None
            if group.state == PREPARING:
                return codes.REBALANCE_IN_PROGRESS, None
            if group.state == COMPLETING and body.member_id == group.leader:
                for member in group.members.values():
                    member.assignment = assignments.get(member.member_id, "")
                group.state = STABLE
            return codes.NONE, None

        while True:
            code, _ = await self._update(body.group_id, check)
            if code != codes.NONE:
                return answer(code)
            group = await self.gw.call(self.store.load, body.group_id)
            if group is None or body.member_id not in group.members:
                return answer(codes.UNKNOWN_MEMBER_ID)
            if group.generation != body.generation_id or group.state == PREPARING:
                return answer(codes.REBALANCE_IN_PROGRESS, group)
            if group.state == STABLE:
                data = base64.b64decode(group.members[body.member_id].assignment)
                return answer(codes.NONE, group, data)
            await self._pause(body.group_id)

    # ---- Heartbeat and LeaveGroup ---------------------------------------------------------

    async def heartbeat(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.Heartbeat, request.api_version)
        if not self._allowed(session, body.group_id):
            return cls(throttle_time_ms=0, error_code=codes.GROUP_AUTHORIZATION_FAILED)

        def sweep(group: ClassicGroup) -> Outcome:
            now = _now_ms()
            self._expire(group, now)
            self._try_complete(group, now)
            if body.member_id not in group.members:
                return codes.UNKNOWN_MEMBER_ID, None
            if body.generation_id != group.generation:
                return codes.ILLEGAL_GENERATION, None
            if group.state == PREPARING:
                return codes.REBALANCE_IN_PROGRESS, None
            return codes.NONE, None

        code, _ = await self._update(body.group_id, sweep)
        if code in (codes.NONE, codes.REBALANCE_IN_PROGRESS):
            await self.gw.call(self.store.beat, body.group_id, body.member_id, _now_ms())
        return cls(throttle_time_ms=0, error_code=code)

    async def leave(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.LeaveGroup, request.api_version)
        if not self._allowed(session, body.group_id):
            return cls(throttle_time_ms=0, error_code=codes.GROUP_AUTHORIZATION_FAILED,
                       members=[])
        leaving = [(m.member_id, m.group_instance_id) for m in body.members or []] \
            if request.api_version >= 3 else [(body.member_id, None)]

        def remove(group: ClassicGroup) -> Outcome:
            results = []
            for member_id, instance in leaving:
                found = member_id if member_id in group.members else next(
                    (m.member_id for m in group.members.values()
                     if instance is not None and m.instance_id == instance), None)
                if found is None:
                    results.append((member_id, instance, codes.UNKNOWN_MEMBER_ID))
                    continue
                del group.members[found]
                results.append((member_id, instance, codes.NONE))
            if results and any(r[2] == codes.NONE for r in results):
                self._after_departure(group, _now_ms())
            return codes.NONE, results

        _, results = await self._update(body.group_id, remove)
        results = results or []
        top = codes.UNKNOWN_MEMBER_ID if request.api_version < 3 and results and \
            results[0][2] != codes.NONE else codes.NONE
        return cls(throttle_time_ms=0, error_code=top, members=[
            cls.MemberResponse(member_id=m, group_instance_id=i, error_code=c)
            for m, i, c in results])


def _common_protocol(members: list[ClassicMember]) -> str | None:
    """The first protocol of the first member that every member supports (Kafka votes;
    with identical client configurations both pick the same)."""
    if not members:
        return None
    common = set.intersection(*({name for name, _ in m.protocols} for m in members))
    for name, _ in members[0].protocols:
        if name in common:
            return name
    return None
