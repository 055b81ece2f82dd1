"""Consumer groups over the HTTP API: :class:`~streamlet.groups.GroupOps` on ``/v1/groups``.

Each operation is one signed request to the native group routes, which run the same
storage engine the direct transport runs in-process; errors come back as the same
StreamletError classes (a stale commit raises ``CommitFailed``). The member core
(:mod:`streamlet.groups.member`) and ``Admin``'s group operations use it unchanged.

Example:
    >>> groups = HttpTransport("https://abc123.execute-api.eu-west-1.amazonaws.com").groups
    >>> groups.snapshot("billing").members                      # doctest: +SKIP
    {}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ..groups.leases import GroupSnapshot, Lease, Member, validate_group
from ..records import TopicPartition
from ..topicconfig import validate_topic_name
from ..wire import (
    lease_from_json,
    lease_json,
    member_json,
    partition_json,
    partitions_json,
    snapshot_from_json,
)

Request = Callable[..., Any]
"""``HttpTransport._request``: (method, path, *, query=, json_body=) -> reply with .json()."""


def _group_path(group: str, suffix: str = "") -> str:
    return f"/v1/groups/{quote(validate_group(group), safe='')}{suffix}"


def _lease_path(group: str, tp: TopicPartition, suffix: str = "") -> str:
    topic = quote(validate_topic_name(tp.topic), safe="")
    return _group_path(group, f"/leases/{topic}/{int(tp.partition)}{suffix}")


def _seen(lease: Lease) -> dict[str, Any]:
    state = lease_json(lease)
    del state["topic"], state["partition"]
    return state


class HttpGroups:
    """GroupOps over the HTTP API (the groups of the deployment the transport talks to)."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def snapshot(self, group: str) -> GroupSnapshot:
        """``GET /v1/groups/{group}``."""
        return snapshot_from_json(self._request("GET", _group_path(group)).json())

    def lease(self, group: str, tp: TopicPartition) -> Lease | None:
        """``GET /v1/groups/{group}/leases/{topic}/{partition}``."""
        found = self._request("GET", _lease_path(group, tp)).json()["lease"]
        return None if found is None else lease_from_json(found)

    def list_groups(self) -> list[str]:
        """``GET /v1/groups``."""
        return [str(g) for g in self._request("GET", "/v1/groups").json()["groups"]]

    def heartbeat(self, group: str, member: Member) -> int:
        """``POST /v1/groups/{group}/members/heartbeat``: the member's new counter."""
        body = member_json(member)
        del body["beat"]
        reply = self._request("POST", _group_path(group, "/members/heartbeat"), json_body=body)
        return int(reply.json()["beat"])

    def remove_member(self, group: str, member_id: str, seen_beat: int | None = None
                      ) -> None:
        """``POST /v1/groups/{group}/members/remove``."""
        self._request("POST", _group_path(group, "/members/remove"),
                      json_body={"member_id": member_id, "seen_beat": seen_beat})

    def ensure_leases(self, group: str, tps: Iterable[TopicPartition]) -> None:
        """``POST /v1/groups/{group}/leases``."""
        self._request("POST", _group_path(group, "/leases"),
                      json_body={"partitions": partitions_json(tps)})

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease
             ) -> Lease | None:
        """``POST .../leases/{topic}/{partition}/take``: None if someone moved it first."""
        taken = self._request("POST", _lease_path(group, tp, "/take"),
                              json_body={"member_id": member_id, "seen": _seen(seen)}
                              ).json()["lease"]
        return None if taken is None else lease_from_json(taken)

    def release(self, group: str, tp: TopicPartition, member_id: str, epoch: int) -> None:
        """``POST .../leases/{topic}/{partition}/release``."""
        self._request("POST", _lease_path(group, tp, "/release"),
                      json_body={"member_id": member_id, "epoch": epoch})

    def commit(self, group: str, member_id: str,
               offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> None:
        """``POST /v1/groups/{group}/commits``: fenced; raises CommitFailed if stale."""
        entries = [{**partition_json(tp), "epoch": epoch, "offset": offset,
                    "metadata": metadata}
                   for tp, (epoch, offset, metadata) in offsets.items()]
        self._request("POST", _group_path(group, "/commits"),
                      json_body={"member_id": member_id, "offsets": entries})

    def reset(self, group: str, offsets: Mapping[TopicPartition, int],
              seen: Mapping[TopicPartition, Lease]) -> None:
        """``PUT /v1/groups/{group}/offsets``."""
        body = {"offsets": [{**partition_json(tp), "offset": offset}
                            for tp, offset in offsets.items()],
                "seen": [lease_json(lease) for lease in seen.values()]}
        self._request("PUT", _group_path(group, "/offsets"), json_body=body)

    def delete(self, group: str) -> None:
        """``DELETE /v1/groups/{group}``."""
        self._request("DELETE", _group_path(group))
