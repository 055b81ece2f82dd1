"""Keys, values and headers: what is accepted and how bad input is named."""

from __future__ import annotations

import pytest

from streamlet._values import to_bytes, to_headers, to_timestamp
from streamlet.errors import InvalidRecord


def test_bytes_like_and_str_values() -> None:
    assert to_bytes("value", b"a", "t") == b"a"
    assert to_bytes("value", bytearray(b"a"), "t") == b"a"
    assert to_bytes("value", memoryview(b"a"), "t") == b"a"
    assert to_bytes("value", "é", "t") == "é".encode()
    assert to_bytes("value", None, "t") is None


@pytest.mark.parametrize("value", [1, 1.5, {"a": 1}, ["x"], object()])
def test_other_values_are_refused_with_the_topic(value: object) -> None:
    with pytest.raises(InvalidRecord, match=r"orders.*bytes, str or None"):
        to_bytes("value", value, "orders")


def test_headers_from_mapping_or_pairs() -> None:
    assert to_headers({"a": "1", "b": None}, "t") == [("a", b"1"), ("b", None)]
    assert to_headers([("a", b"1"), ("a", b"2")], "t") == [("a", b"1"), ("a", b"2")]


@pytest.mark.parametrize("headers", [[(1, b"x")], [("a", 3)], ["ab"], "ab", 5])
def test_bad_headers(headers: object) -> None:
    with pytest.raises(InvalidRecord, match="orders"):
        to_headers(headers, "orders")


@pytest.mark.parametrize("ts", [-1, 1.5, "now", True])
def test_bad_timestamps(ts: object) -> None:
    with pytest.raises(InvalidRecord, match="timestamp"):
        to_timestamp(ts, "orders")
