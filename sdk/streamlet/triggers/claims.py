"""Which dispatcher delivers a partition now: a claim held in the trigger group's lease.

A dispatcher session takes the partition's lease (a conditional write that bumps the
lease epoch, :meth:`GroupOps.take`) with an owner that names the session's *token* and a
wall-clock deadline: ``dispatcher.{token}.{until_ms}``. Commits are fenced by owner and
epoch, so a session that lost its lease (to a newer claim, or to ``reset-offsets``) can
no longer commit. A session ends by taking the lease again as ``dispatcher.idle.0`` and
then reading once more: a signal that found the claim busy relied on the holder to
deliver its records, and the holder's last read comes after that signal's append.

Tokens name what will be retried if the session dies: the stream batch that signalled it
(Lambda redelivers the same batch to the dispatcher after a crash), the wake-up message,
or the local runner. A claim whose token is ours is taken back at once; another token's
claim is left alone until its deadline, after which anyone may take it.

Example:
    >>> owner("a1b2", 1_700_000_000_000)
    'dispatcher.a1b2.1700000000000'
    >>> parse(owner("a1b2", 5)), parse("dispatcher.idle.0"), parse("m-1")
    (Claim(token='a1b2', until_ms=5), None, None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..groups.leases import Lease
from ..groups.ops import GroupOps
from ..records import TopicPartition

PREFIX = "dispatcher"
IDLE = f"{PREFIX}.idle.0"
_OWNER = re.compile(rf"{PREFIX}\.([A-Za-z0-9_-]{{1,64}})\.(\d{{1,15}})")


@dataclass(frozen=True)
class Claim:
    token: str
    until_ms: int


def owner(token: str, until_ms: int) -> str:
    """The lease owner a session with ``token`` holds until ``until_ms``."""
    return f"{PREFIX}.{token}.{until_ms}"


def parse(lease_owner: str | None) -> Claim | None:
    """The live-or-expired claim an owner names (None: idle, none, or not a dispatcher)."""
    found = _OWNER.fullmatch(lease_owner or "")
    if found is None or found[1] == "idle":
        return None
    return Claim(found[1], int(found[2]))


def acquire(groups: GroupOps, group: str, tp: TopicPartition, token: str, until_ms: int,
            now_ms: int, force: bool = False) -> Lease | None:
    """Take the partition's lease for a session; None when another live claim holds it
    (or another session took it first)."""
    lease = groups.lease(group, tp)
    if lease is None:
        groups.ensure_leases(group, [tp])
        lease = groups.lease(group, tp)
        assert lease is not None
    held = parse(lease.owner)
    if held is not None and held.token != token and held.until_ms > now_ms and not force:
        return None
    return groups.take(group, tp, owner(token, until_ms), lease)


def release(groups: GroupOps, group: str, lease: Lease) -> Lease | None:
    """Mark the partition idle (fencing nothing anyone else holds); the idle lease, or
    None if it moved meanwhile (a reset, or a newer claim)."""
    return groups.take(group, lease.tp, IDLE, lease)
