"""Checking and normalising what users pass: integers, keys, values and headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeGuard

from .errors import InvalidRecord

Bytesish = bytes | bytearray | memoryview | str


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` that is not a ``bool`` (``True`` is not a partition number).

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)
HeadersIn = Mapping[str, Bytesish | None] | Iterable[tuple[str, Bytesish | None]] | None


def to_bytes(what: str, value: object, topic: str) -> bytes | None:
    """bytes-like values pass through, str is UTF-8 encoded, None stays None."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidRecord(
        f"Record {what} for topic '{topic}' must be bytes, str or None, "
        f"got {type(value).__name__}; serialize it first (e.g. json.dumps(...).encode()).")


def to_headers(headers: object, topic: str) -> list[tuple[str, bytes | None]]:
    """A list of (str, bytes | None) pairs from a mapping or an iterable of pairs."""
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Iterable):
        raise InvalidRecord(f"Headers for topic '{topic}' must be a mapping or (key, value) pairs.")
    out: list[tuple[str, bytes | None]] = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidRecord(f"Header {pair!r} for topic '{topic}' is not a (key, value) pair.")
        key, value = pair
        if not isinstance(key, str):
            raise InvalidRecord(
                f"Header key {key!r} for topic '{topic}' must be a str, got {type(key).__name__}.")
        out.append((key, to_bytes(f"header '{key}' value", value, topic)))
    return out


def to_timestamp(timestamp_ms: object, topic: str) -> int | None:
    if timestamp_ms is None:
        return None
    if not is_int(timestamp_ms) or timestamp_ms < 0:
        raise InvalidRecord(
            f"Record timestamp for topic '{topic}' must be a non-negative int of milliseconds, "
            f"got {timestamp_ms!r}.")
    return timestamp_ms
