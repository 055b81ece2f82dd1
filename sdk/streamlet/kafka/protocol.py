"""The Kafka wire protocol's framing and message classes, from kafka-python's ``kafka.protocol``.

kafka-python (3.x) generates every request and response class from Apache Kafka's own
JSON message definitions, every version including the flexible ones (compact strings,
tagged fields), with decoders for requests and encoders for responses: the gateway
hand-writes no encoder. This module picks the versions the gateway serves
(:data:`SUPPORTED`), reads a request frame, and writes a response frame.

A request the gateway cannot serve is still answered: an API it does not serve, or a
version outside :data:`SUPPORTED`, gets ``UNSUPPORTED_VERSION`` in the response shape the
client expects (ApiVersions at v0, as KIP-511 asks), never a dropped connection.

Example:
    >>> SUPPORTED[ApiKey.Produce]
    (3, 9)
    >>> parse_header(bytes.fromhex("0012000300000007000178"))
    (18, 3, 7)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kafka.protocol import admin as _admin
from kafka.protocol import consumer as _consumer
from kafka.protocol import metadata as _metadata
from kafka.protocol import producer as _producer
from kafka.protocol import sasl as _sasl
from kafka.protocol.api_key import ApiKey

from .codes import UNSUPPORTED_VERSION

__all__ = ["SUPPORTED", "ApiKey", "Request", "decode_request", "encode_response",
           "error_response", "parse_header", "response_class"]

SUPPORTED: dict[int, tuple[int, int]] = {
    ApiKey.Produce: (3, 9),
    ApiKey.Fetch: (4, 12),
    ApiKey.ListOffsets: (1, 6),
    ApiKey.Metadata: (0, 12),
    ApiKey.OffsetCommit: (2, 8),
    ApiKey.OffsetFetch: (1, 7),
    ApiKey.FindCoordinator: (0, 3),
    ApiKey.JoinGroup: (0, 7),
    ApiKey.Heartbeat: (0, 4),
    ApiKey.LeaveGroup: (0, 4),
    ApiKey.SyncGroup: (0, 5),
    ApiKey.DescribeGroups: (0, 5),
    ApiKey.ListGroups: (0, 4),
    ApiKey.SaslHandshake: (1, 1),
    ApiKey.ApiVersions: (0, 3),
    ApiKey.CreateTopics: (2, 7),
    ApiKey.DeleteTopics: (1, 5),
    ApiKey.DeleteRecords: (0, 2),
    ApiKey.InitProducerId: (0, 4),
    ApiKey.AddPartitionsToTxn: (0, 3),
    ApiKey.AddOffsetsToTxn: (0, 3),
    ApiKey.EndTxn: (0, 3),
    ApiKey.TxnOffsetCommit: (0, 3),
    ApiKey.DescribeConfigs: (1, 4),
    ApiKey.AlterConfigs: (0, 2),
    ApiKey.SaslAuthenticate: (0, 2),
    ApiKey.CreatePartitions: (0, 3),
    ApiKey.DeleteGroups: (0, 2),
    ApiKey.IncrementalAlterConfigs: (0, 1),
}
"""API key -> (min, max) version served and advertised by ApiVersions. The maxima stop
before versions that need topic ids in requests (Fetch 13, Produce 13), KIP-848's member
epochs (OffsetCommit 9), batched group lookups (FindCoordinator 4, OffsetFetch 8) or
KIP-890's transaction protocol (AddPartitionsToTxn 4 and the versions answering
TRANSACTION_ABORTABLE: AddOffsetsToTxn, EndTxn and TxnOffsetCommit 4, InitProducerId 5)."""

_MODULES = (_metadata, _consumer, _producer, _admin, _sasl)


def _classes() -> tuple[dict[int, Any], dict[int, Any]]:
    requests: dict[int, Any] = {}
    responses: dict[int, Any] = {}
    for module in _MODULES:
        for name in getattr(module, "__all__", ()):
            cls = getattr(module, name)
            key = getattr(cls, "API_KEY", None)
            if key is None:
                continue
            (requests if name.endswith("Request") else responses)[int(key)] = cls
    return requests, responses


_REQUESTS, _RESPONSES = _classes()


def _create_every_version() -> None:
    """Create each message class's per-version classes now, at import, on one thread.

    kafka-python creates ``Class[version]`` on first use, and each new response class
    registers itself, by weak reference, as *the* class for reading responses of its API.
    Two threads creating the same version at once (a gateway and Kafka clients in one
    process, or two clients) can leave that reference pointing at the class that lost the
    race and was freed: every later response of that API, for every kafka-python client
    in the process, then fails with ``ReferenceError`` and its connection stops reading.
    Created here, every later lookup is a cache hit and nothing registers again."""
    for cls in (*_REQUESTS.values(), *_RESPONSES.values()):
        for version in range(cls.min_version, cls.max_version + 1):
            cls[version]


_create_every_version()


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request: its API key and version, correlation id, client id, body."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any


def parse_header(frame: bytes) -> tuple[int, int, int]:
    """(api key, api version, correlation id): the part of every request header that
    never changes, readable even for a version the gateway cannot decode."""
    key, version, correlation = struct.unpack_from(">hhi", frame, 0)
    return int(key), int(version), int(correlation)


def servable(api_key: int, api_version: int) -> bool:
    low, high = SUPPORTED.get(api_key, (1, 0))
    return low <= api_version <= high


def decode_request(frame: bytes) -> Request:
    """Decode a request frame (without its size prefix) the gateway serves."""
    key, version, _ = parse_header(frame)
    body = _REQUESTS[key].decode(frame, version=version, header=True)
    header = body.header
    return Request(key, version, header.correlation_id, header.client_id, body)


def response_class(api_key: int, api_version: int) -> Any:
    return _RESPONSES[api_key][api_version]


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """The framed response (size prefix, response header, body)."""
    body.API_VERSION = api_version
    body.with_header(correlation_id=correlation_id)
    return bytes(body.encode(header=True, framed=True))


def error_response(api_key: int, api_version: int, correlation_id: int,
                   code: int = UNSUPPORTED_VERSION) -> bytes:
    """An answer to a request the gateway does not serve: its response shape with every
    top-level ``error_code`` set, or ApiVersions v0 for a version it cannot decode."""
    if api_key == ApiKey.ApiVersions:
        return encode_response(api_key, 0, correlation_id, api_versions_body(code))
    cls = _RESPONSES.get(api_key)
    if cls is None or not 0 <= api_version <= cls.max_version:
        payload = struct.pack(">ih", correlation_id, code)  # header v0 + an error code
        return struct.pack(">i", len(payload)) + payload
    body = cls[api_version]()
    if "error_code" in cls.fields:
        body.error_code = code
    return encode_response(api_key, api_version, correlation_id, body)


def api_versions_body(code: int = 0) -> Any:
    """ApiVersionsResponse: every API the gateway serves, with its version range."""
    cls = _RESPONSES[ApiKey.ApiVersions]
    keys = [cls.ApiVersion(api_key=key, min_version=low, max_version=high)
            for key, (low, high) in sorted(SUPPORTED.items())]
    return cls(error_code=code, api_keys=keys, throttle_time_ms=0)
