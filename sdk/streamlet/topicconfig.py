"""Topic names and per-topic configuration: defaults, parsing and validation (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._values import is_int
from .codec import COMPRESSION_CODES
from .errors import InvalidConfig, InvalidPartitions, InvalidTopicName

MAX_TOPIC_NAME_LENGTH = 249
MAX_PARTITIONS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Upper bound for max.message.bytes: a batch travels base64-encoded in a Lambda request
and response, which may not pass 6 MB (4 MiB is 5.6 MB as base64, with room for the
rest of the event)."""
MAX_INLINE_BYTES = 350 * 1024
"""A DynamoDB item holds at most 400 KB; keep headroom for the other attributes."""
DEFAULT_INLINE_BYTES = 8 * 1024
"""Batches above this go to S3. A transactional DynamoDB write costs 2 write units per KB
($1.25 per million KB); one S3 PUT costs $5 per million, i.e. ~8 write units, plus a small
pointer item (2 units). Break-even sits near 5 KB; 8 KiB keeps small, latency-sensitive
batches in DynamoDB and sends everything bigger to S3 at a fraction of the cost."""

DEFAULT_LOCAL_RETENTION_MS = 24 * 3600 * 1000
ARCHIVE_SLACK_MS = 10 * 60 * 1000
"""``local.retention.ms`` must exceed ``segment.ms`` by this much: hot batches expire by
DynamoDB TTL, so the archiver (scheduled every few minutes) must move them first."""

_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def validate_topic_name(name: object) -> str:
    """Kafka's rule: ``[a-zA-Z0-9._-]``, 1 to 249 characters, not ``.`` or ``..``.

    Example:
        >>> validate_topic_name("orders.v1")
        'orders.v1'
    """
    if not isinstance(name, str):
        raise InvalidTopicName(f"Topic name must be a string, got {type(name).__name__}.")
    if name in (".", ".."):
        raise InvalidTopicName(f"Topic name '{name}' is not allowed.")
    if not name or len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicName(
            f"Topic name must be 1 to {MAX_TOPIC_NAME_LENGTH} characters, got {len(name)}."
        )
    if not _LEGAL_NAME.fullmatch(name):
        raise InvalidTopicName(
            f"Topic name {name!r} contains characters other than ASCII letters, digits, "
            "'.', '_' and '-'."
        )
    return name


def validate_partitions(topic: str, partitions: object) -> int:
    """A partition count: an int from 1 to MAX_PARTITIONS."""
    if not is_int(partitions):
        raise InvalidPartitions(f"Partition count for '{topic}' must be an integer.")
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitions(
            f"Partition count for '{topic}' must be between 1 and {MAX_PARTITIONS}, "
            f"got {partitions}."
        )
    return partitions


@dataclass(frozen=True)
class _Key:
    default: str
    check: Callable[[str, str], str]


def _int_range(low: int, high: int) -> Callable[[str, str], str]:
    def check(key: str, raw: str) -> str:
        try:
            value = int(raw)
        except ValueError:
            raise InvalidConfig(f"Config {key}={raw!r} is not an integer.") from None
        if not low <= value <= high:
            raise InvalidConfig(f"Config {key}={value} is out of range [{low}, {high}].")
        return str(value)

    return check


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def check(key: str, raw: str) -> str:
        if raw not in allowed:
            raise InvalidConfig(f"Config {key}={raw!r} must be one of: {', '.join(allowed)}.")
        return raw

    return check


_INT64_MAX = 2**63 - 1
CONFIG_KEYS: dict[str, _Key] = {
    "retention.ms": _Key("604800000", _int_range(-1, _INT64_MAX)),
    "retention.bytes": _Key("-1", _int_range(-1, _INT64_MAX)),
    "max.message.bytes": _Key(str(1024 * 1024), _int_range(1024, MAX_BATCH_BYTES)),
    "compression.type": _Key("producer", _choice("producer", "uncompressed", *COMPRESSION_CODES)),
    "cleanup.policy": _Key("delete", _choice("delete")),
    "message.timestamp.type": _Key("CreateTime", _choice("CreateTime", "LogAppendTime")),
    "segment.ms": _Key("3600000", _int_range(1000, _INT64_MAX)),
    "segment.bytes": _Key(str(64 * 1024 * 1024), _int_range(14, 2**31 - 1)),
    "inline.max.bytes": _Key(str(DEFAULT_INLINE_BYTES), _int_range(0, MAX_INLINE_BYTES)),
    "local.retention.ms": _Key(str(DEFAULT_LOCAL_RETENTION_MS), _int_range(-1, _INT64_MAX)),
    # Kafka's (KIP-937) window for a record's CreateTime around the broker's clock:
    "message.timestamp.before.max.ms": _Key(str(_INT64_MAX), _int_range(0, _INT64_MAX)),
    "message.timestamp.after.max.ms": _Key("3600000", _int_range(0, _INT64_MAX)),
}


def _as_text(key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidConfig(f"Config {key} must be a string or an integer.")
    return str(value)


def validate_config(overrides: Mapping[str, object] | None) -> dict[str, str]:
    """Merge overrides over the defaults; reject unknown keys and bad values.

    Example:
        >>> validate_config({"retention.ms": 60000})["retention.ms"]
        '60000'
    """
    config = {key: spec.default for key, spec in CONFIG_KEYS.items()}
    for key, value in (overrides or {}).items():
        spec = CONFIG_KEYS.get(key)
        if spec is None:
            known = ", ".join(sorted(CONFIG_KEYS))
            raise InvalidConfig(f"Unknown topic config {key!r}; known keys: {known}.")
        config[key] = spec.check(key, _as_text(key, value))
    _check_local_retention(config)
    return config


def _check_local_retention(config: Mapping[str, str]) -> None:
    """Hot batches expire ``local.retention.ms`` after they are appended (-1: never)."""
    local, segment = config_int(config, "local.retention.ms"), config_int(config, "segment.ms")
    if local != -1 and local < segment + ARCHIVE_SLACK_MS:
        raise InvalidConfig(
            f"Config local.retention.ms={local} must be -1 or at least segment.ms + "
            f"{ARCHIVE_SLACK_MS} ({segment + ARCHIVE_SLACK_MS}): batches leave DynamoDB "
            "after local.retention.ms, so they must be archived to S3 before then.")


def config_int(config: Mapping[str, str], key: str) -> int:
    """An integer config value, falling back to its default."""
    return int(config.get(key, CONFIG_KEYS[key].default))


def config_str(config: Mapping[str, str], key: str) -> str:
    return config.get(key, CONFIG_KEYS[key].default)
