"""Confluent REST Proxy v2 consumption: consumer instances, assigned or subscribed.

An instance's format, assignment or subscription, owned leases and positions live in
DynamoDB (``engine.instances``), so any invocation can serve its next request. An instance
either assigns partitions manually (``.../assignments``; it reads them, but cannot commit)
or subscribes (``.../subscription`` in :mod:`functions.v2_subscriptions`): then it is a
member of the consumer group ``{group}``, sharing partitions with SDK consumers and other
instances. Each of its requests is its heartbeat, and ``GET .../records`` is also its
rebalance: it reads only the partitions it owns, from the committed offset (or
``auto.offset.reset``) when it takes one, and commits with ``.../offsets``, fenced by the
lease epoch. Mixing the two modes is 409 with error_code 40903, as REST Proxy answers
Kafka's IllegalStateException. ``DELETE`` of a subscribed instance, or of its
subscription, releases its partitions at once.

An instance belongs to the IAM principal that created it (any other gets 403), and every
topic a body names, or a records request reads, must be within the caller's grant
(:mod:`functions._access`): 403 naming the topic, nothing written.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from streamlet.errors import InvalidRequest, RecordNotJson
from streamlet.fetching import fetch_records, reset_offset
from streamlet.groups.instance import ConsumerInstance
from streamlet.records import Record, TopicPartition
from streamlet.topicconfig import validate_topic_name

from ._access import Access, caller_access
from ._runtime import engine
from ._shared import (
    INSTANCE,
    V2_JSON,
    base_url,
    beat,
    instance,
    instances,
    leave,
    long_poll,
    new_router,
    no_content,
    owned_instance,
    subscriptions,
    unquoted,
    wait_budget_ms,
)
from .encoding import timestamp_ms
from .models import CreateInstance, Partitions, Positions, TopicPartitionRef

router = new_router()
MAX_RECORDS_BYTES = 4 * 1024 * 1024
"""Rendered record JSON per v2 response: it must fit Lambda's 6 MB response."""
RECORD_JSON_OVERHEAD = 96
"""The keys, punctuation, partition and offset of one rendered record, at most."""

@router.post("/consumers/<group>")
def create_instance(group: str, body: CreateInstance) -> Response[str]:
    """Create a consumer instance; the answer names it and gives its base URI."""
    group = unquoted(group)
    name = body.name or f"rest-consumer-{uuid.uuid4().hex[:12]}"
    instances(_access()).create(group, name, body.format, body.auto_offset_reset,
                                body.request_timeout_ms, body.session_timeout_ms)
    uri = (f"{base_url(router.current_event)}/consumers/{quote(group, safe='')}"
           f"/instances/{quote(name, safe='')}")
    return Response(200, V2_JSON, json.dumps({"instance_id": name, "base_uri": uri}))


@router.delete(INSTANCE)
def delete_instance(group: str, name: str) -> Response[None]:
    """Delete a consumer instance (204); a subscribed one hands its partitions over at once."""
    access = _access()
    state = owned_instance(access, group, name)
    leave(access, state)
    instances(access).delete(state.group, state.name)
    return no_content()


def _access() -> Access:
    return caller_access(router.current_event)


@router.post(f"{INSTANCE}/assignments")
def assign(group: str, name: str, body: Partitions) -> Response[None]:
    """Assign partitions manually (replaces the previous assignment); 409 if subscribed."""
    access = _access()
    owned_instance(access, group, name)
    tps = _existing(access, body.partitions)
    instances(access).assign(unquoted(group), unquoted(name), tps)
    return no_content()


@router.get(f"{INSTANCE}/assignments")
def assignments(group: str, name: str) -> Response[str]:
    """The partitions assigned to the instance (if subscribed: those it owns now)."""
    state = instance(_access(), group, name)
    parts = [{"topic": tp.topic, "partition": tp.partition} for tp in state.partitions]
    return Response(200, V2_JSON, json.dumps({"partitions": parts}))


def _existing(access: Access, refs: Iterable[TopicPartitionRef]) -> list[TopicPartition]:
    """The partitions, each checked to be granted (AccessDenied) and to exist
    (TopicNotFound / PartitionNotFound)."""
    out = []
    for ref in refs:
        access.check_read(validate_topic_name(ref.topic), ref.partition)
        engine().watermarks(ref.topic, ref.partition)
        out.append(TopicPartition(ref.topic, ref.partition))
    return out


def _assigned(access: Access, state: ConsumerInstance, refs: Iterable[TopicPartitionRef]
              ) -> list[TopicPartition]:
    tps = [TopicPartition(r.topic, r.partition) for r in refs]
    for tp in tps:
        access.check_read(tp.topic, tp.partition)
    missing = [tp for tp in tps if tp not in state.partitions]
    if missing:
        names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in missing)
        raise InvalidRequest(f"Not assigned to (or owned by) consumer instance "
                             f"'{state.name}': {names}.")
    return tps


@router.post(f"{INSTANCE}/positions")
def seek(group: str, name: str, body: Positions) -> Response[None]:
    """Seek to offsets, or to the first offsets at or after timestamps."""
    access = _access()
    state = owned_instance(access, group, name)
    positions = dict(zip(_assigned(access, state, body.offsets),
                         (p.offset for p in body.offsets), strict=True))
    timestamps = _assigned(access, state, body.timestamps)
    beat(access, state)
    for tp, ref in zip(timestamps, body.timestamps, strict=True):
        found = engine().offset_for_time(tp.topic, tp.partition, timestamp_ms(ref.timestamp, 0))
        if found is None:
            found = engine().watermarks(tp.topic, tp.partition)[1]
        positions[tp] = found
    instances(access).set_positions(state.group, state.name, positions)
    return no_content()


@router.post(f"{INSTANCE}/positions/beginning")
def seek_to_beginning(group: str, name: str, body: Partitions) -> Response[None]:
    """Seek partitions to their log start offsets."""
    return _seek_to_edge(group, name, body, 0)


@router.post(f"{INSTANCE}/positions/end")
def seek_to_end(group: str, name: str, body: Partitions) -> Response[None]:
    """Seek partitions to their high watermarks."""
    return _seek_to_edge(group, name, body, 1)


def _seek_to_edge(group: str, name: str, body: Partitions, edge: int) -> Response[None]:
    access = _access()
    state = owned_instance(access, group, name)
    tps = _assigned(access, state, body.partitions)
    beat(access, state)
    instances(access).set_positions(state.group, state.name,
                                    {tp: engine().watermarks(tp.topic, tp.partition)[edge]
                                     for tp in tps})
    return no_content()


@router.get(f"{INSTANCE}/records")
def records(group: str, name: str,
            timeout: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
            max_bytes: Annotated[int, Query(ge=1, le=2**63 - 1)] = MAX_RECORDS_BYTES
            ) -> Response[str]:
    """Records of the instance's partitions, waiting up to ``timeout`` ms for some.

    A subscribed instance rebalances first and waits at most half its session; only
    partitions within the caller's grant are read (a pattern matches only those).
    """
    access = _access()
    state = owned_instance(access, group, name)
    wait_ms = state.request_timeout_ms if timeout is None else timeout
    if state.subscribed:
        state = subscriptions(access).tick(state)
        wait_ms = min(wait_ms, state.session_ms // 2)
    for tp in state.partitions:
        access.check_read(tp.topic, tp.partition)
    budget = min(max_bytes, MAX_RECORDS_BYTES)
    found, positions = long_poll(lambda: _collect(state, budget), lambda r: bool(r[0]),
                                 min(wait_ms, wait_budget_ms(router.lambda_context)))
    body = json.dumps([_render(r, state.format) for r in found])
    if state.subscribed:
        instances(access).save_membership(replace(state, positions=positions))
    else:
        instances(access).set_positions(state.group, state.name, positions)
    return Response(200, f"application/vnd.kafka.{state.format}.v2+json", body)


def _collect(state: ConsumerInstance, budget: int
             ) -> tuple[list[Record], dict[TopicPartition, int]]:
    """Records of the instance's partitions while their rendered JSON fits ``budget`` (at
    least one record), and the positions after them (the SDK consumer's fetch and
    auto.offset.reset logic; decoding is bounded by the budget too)."""
    found: list[Record] = []
    positions = dict(state.positions)
    for tp in state.partitions:
        if budget <= 0:
            break
        position = positions.get(tp)
        if position is None:
            position = reset_offset(engine(), tp, state.auto_offset_reset)
        fetched = fetch_records(engine(), tp, position, state.auto_offset_reset, budget)
        taken: list[Record] = []
        for record in fetched.records:
            size = _rendered_size(record, state.format)
            if size > budget and (taken or found):
                break
            taken.append(record)
            budget -= size
        positions[tp] = taken[-1].offset + 1 if taken else fetched.position
        if len(taken) == len(fetched.records) and fetched.end > positions[tp]:
            positions[tp] = fetched.end  # past the batches of aborted transactions
        found += taken
    return found, positions


def _rendered_size(record: Record, format: str) -> int:
    """An upper bound of a record's JSON in a v2 response: base64 is 4/3 of the bytes;
    re-dumped JSON at most 3x (a 2-byte UTF-8 character becomes a 6-byte escape)."""
    data = len(record.key or b"") + len(record.value or b"")
    grown = data * 4 // 3 + 4 if format == "binary" else data * 3
    return grown + len(record.topic) + RECORD_JSON_OVERHEAD


def _render(record: Record, format: str) -> dict[str, Any]:
    return {"topic": record.topic, "key": _embedded(record.key, format),
            "value": _embedded(record.value, format), "partition": record.partition,
            "offset": record.offset}


def _embedded(data: bytes | None, format: str) -> Any:
    if data is None:
        return None
    if format == "binary":
        return base64.b64encode(data).decode()
    try:
        return json.loads(data)
    except ValueError:
        raise RecordNotJson("A record is not JSON; create the consumer instance with "
                            "format 'binary' to read it.") from None
