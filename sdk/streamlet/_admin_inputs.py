"""What users pass to the Admin's kafka-python style calls, checked and normalised (pure).

Example:
    >>> operations("orders", {"retention.ms": ("SET", 60000), "segment.ms": ("DELETE", None)})
    ({'retention.ms': 60000}, ['segment.ms'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from ._values import is_int
from .errors import InvalidConfig, InvalidRequest, StreamletError
from .records import TopicPartition

T = TypeVar("T")


def settled(results: dict[str, T], raise_errors: bool) -> dict[str, T]:
    """``results``, or (``raise_errors``) the first StreamletError among them raised."""
    if raise_errors:
        for outcome in results.values():
            if isinstance(outcome, StreamletError):
                raise outcome
    return results


def config_resource(resource: object) -> tuple[str, set[str] | None]:
    """(topic name, wanted keys or None) from a name or a ConfigResource-like object."""
    if isinstance(resource, str):
        return resource, None
    kind = getattr(resource, "resource_type", "TOPIC")
    if str(getattr(kind, "name", kind)).upper() not in ("TOPIC", "2"):
        raise InvalidRequest(f"Only topic configs exist in Streamlet (no brokers), got "
                             f"resource type {kind!r}.")
    name = getattr(resource, "name", None)
    if not isinstance(name, str):
        raise InvalidRequest(f"A config resource needs a topic name, got {resource!r}.")
    keys = getattr(resource, "configs", None)
    return name, None if keys is None else set(keys)


def operations(topic: str, ops: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """(updates, deletes) from ``{key: (op, value)}``; op SET or DELETE (a string or an
    enum member such as kafka-python's AlterConfigOp, by name)."""
    updates: dict[str, object] = {}
    deletes: list[str] = []
    for key, change in ops.items():
        op, value = change if isinstance(change, tuple) and len(change) == 2 else (change, None)
        verb = str(getattr(op, "name", op)).upper()
        if verb == "SET":
            updates[key] = value
        elif verb == "DELETE":
            deletes.append(key)
        else:
            raise InvalidConfig(f"{topic}: {key}: operation {verb!r} is not SET or DELETE "
                                "(APPEND and SUBTRACT apply to list configs; topics have none).")
    return updates, deletes


def offset_of(tp: TopicPartition, value: object) -> int:
    """An offset given as an int or as an object with ``offset`` (OffsetAndMetadata)."""
    offset = getattr(value, "offset", value)
    if not is_int(offset) or offset < 0:
        raise InvalidRequest(f"Offset for {tp.topic}[{tp.partition}] must be a non-negative "
                             f"integer, got {value!r}.")
    return offset
