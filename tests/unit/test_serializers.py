"""Serializers: JSON (orjson), UTF-8 strings and Avro single-object encoding."""

from __future__ import annotations

import dataclasses
import doctest
import math
from datetime import UTC, datetime

import pytest

from streamlet import _admin_inputs, _metrics, futures, serializers
from streamlet.errors import InvalidRecord, RecordNotJson
from streamlet.serializers import (
    AVRO_MARKER,
    AvroDeserializer,
    AvroSerializer,
    json_deserializer,
    json_serializer,
    string_deserializer,
    string_serializer,
)

ORDER = {"type": "record", "name": "Order",
         "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}


@pytest.mark.parametrize("module", [serializers, futures, _metrics, _admin_inputs])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_json_is_compact_utf8_and_knows_common_types() -> None:
    assert json_serializer({"name": "Zoë", "n": [1, 2.5, None, True]}) == (
        '{"name":"Zoë","n":[1,2.5,null,true]}'.encode())
    assert json_serializer({1: "a"}) == b'{"1":"a"}'  # as the json module coerces keys
    assert json_serializer(Point(1, 2)) == b'{"x":1,"y":2}'
    assert json_serializer(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        b'"2026-01-02T03:04:05+00:00"')
    assert json_serializer(math.nan) == b"null"  # JSON has no NaN
    assert json_serializer(None) is None and json_deserializer(None) is None


def test_json_refuses_what_it_cannot_write_or_read() -> None:
    with pytest.raises(InvalidRecord, match="Cannot serialize bytes to JSON"):
        json_serializer(b"raw")
    with pytest.raises(InvalidRecord):
        json_serializer({"big": 2**70})
    with pytest.raises(RecordNotJson, match="not JSON"):
        json_deserializer(b"{nope")
    assert json_deserializer(json_serializer({"a": [1, {"b": None}]})) == {"a": [1, {"b": None}]}


def test_strings_are_utf8() -> None:
    assert string_serializer("k-ü") == "k-ü".encode()
    assert string_serializer(b"raw") == b"raw" and string_serializer(None) is None
    assert string_deserializer("k-ü".encode()) == "k-ü" and string_deserializer(None) is None
    with pytest.raises(InvalidRecord, match="takes str"):
        string_serializer(5)


def test_avro_single_object_encoding_carries_the_schema_fingerprint() -> None:
    # The Avro specification's CRC-64-AVRO of the schema "null": 0x63dd24e7cc258f8a,
    # stored little-endian after the C3 01 marker.
    assert AvroSerializer('"null"').fingerprint == bytes.fromhex("8a8f25cce724dd63")
    data = AvroSerializer(ORDER)({"id": 7, "item": "lamp"})
    assert data is not None and data[:2] == AVRO_MARKER
    assert data[10:] == b"\x0e\x08lamp"  # zigzag 7, then the string's length 4 and bytes
    assert AvroDeserializer(ORDER)(data) == {"id": 7, "item": "lamp"}
    assert AvroSerializer(ORDER)(None) is None and AvroDeserializer(ORDER)(None) is None


def test_avro_resolves_known_writer_schemas_and_refuses_others() -> None:
    old = AvroSerializer(ORDER)({"id": 1, "item": "cup"})
    newer = {**ORDER, "fields": [*ORDER["fields"],  # type: ignore[list-item]
                                 {"name": "qty", "type": "int", "default": 1}]}
    assert AvroDeserializer(newer, writer_schemas=[ORDER])(old) == {
        "id": 1, "item": "cup", "qty": 1}
    with pytest.raises(InvalidRecord, match="unknown Avro schema"):
        AvroDeserializer(newer)(old)
    with pytest.raises(InvalidRecord, match="not Avro single-object"):
        AvroDeserializer(ORDER)(b'{"id":1}')
    with pytest.raises(InvalidRecord, match="does not match the Avro schema 'Order'"):
        AvroSerializer(ORDER)({"id": "seven", "item": "x"})
