"""Topic names and configs are validated before anything is written."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlet.errors import InvalidConfig, InvalidPartitions, InvalidTopicName
from streamlet.topicconfig import (
    CONFIG_KEYS,
    config_int,
    validate_config,
    validate_partitions,
    validate_topic_name,
)

KAFKA_RULE = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@settings(max_examples=2000)
@given(st.text(max_size=260) | st.from_regex(KAFKA_RULE, fullmatch=True))
def test_accepted_names_are_exactly_kafkas(name: str) -> None:
    legal = bool(KAFKA_RULE.fullmatch(name)) and name not in (".", "..")
    try:
        validate_topic_name(name)
        accepted = True
    except InvalidTopicName:
        accepted = False
    assert accepted == legal


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "has space", "ünïcode", "a/b", None, 3])
def test_bad_names_say_why(name: object) -> None:
    with pytest.raises(InvalidTopicName, match=r"Topic name"):
        validate_topic_name(name)


def test_249_characters_is_the_limit() -> None:
    assert validate_topic_name("a" * 249) == "a" * 249


def test_defaults_cover_every_key() -> None:
    config = validate_config(None)
    assert set(config) == set(CONFIG_KEYS)
    assert config["max.message.bytes"] == str(1024 * 1024)
    assert config["message.timestamp.type"] == "CreateTime"


def test_overrides_are_normalised_to_strings() -> None:
    config = validate_config({"retention.ms": 60000, "retention.bytes": "-1",
                              "message.timestamp.type": "LogAppendTime"})
    assert config["retention.ms"] == "60000"
    assert config_int(config, "retention.bytes") == -1


@pytest.mark.parametrize(("key", "value", "message"), [
    ("retention.ms", -2, "out of range"),
    ("retention.ms", "soon", "not an integer"),
    ("max.message.bytes", 10 * 1024 * 1024, "out of range"),
    ("compression.type", "brotli", "must be one of"),
    ("cleanup.policy", "compact", "must be one of"),
    ("message.timestamp.type", "Now", "must be one of"),
    ("inline.max.bytes", 500_000, "out of range"),
    ("segment.bytes", 1.5, "string or an integer"),
    ("retention.ms", True, "string or an integer"),
    ("no.such.key", 1, "Unknown topic config"),
])
def test_bad_configs_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message) as info:
        validate_config({key: value})
    assert key in str(info.value)


@pytest.mark.parametrize("count", [0, -1, 1001, "3", True, 2.0])
def test_bad_partition_counts(count: object) -> None:
    with pytest.raises(InvalidPartitions, match="orders"):
        validate_partitions("orders", count)
