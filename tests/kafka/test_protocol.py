"""The wire: requests the gateway does not serve are answered, never dropped; versions
advertised are the ones served; a group used by SDK consumers is refused to Kafka clients."""

from __future__ import annotations

import socket
import struct

import pytest
from kafka import KafkaConsumer
from kafka.errors import InconsistentGroupProtocolError
from kafka.protocol.admin import DescribeAclsRequest
from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.producer import EndTxnRequest

from streamlet import Consumer
from streamlet.errors import GroupActive
from streamlet.kafka import KafkaGateway, protocol
from streamlet.kafka.protocol import SUPPORTED
from streamlet.local import LocalPlatform
from tests.kafka.raw import read_frame


def _exchange(gateway: KafkaGateway, request: object, version: int) -> bytes:
    request.API_VERSION = version  # type: ignore[attr-defined]
    request.with_header(correlation_id=7, client_id="raw")  # type: ignore[attr-defined]
    frame = bytes(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
    with socket.create_connection(gateway.advertised, timeout=10) as sock:
        sock.sendall(frame)
        return read_frame(sock)


def test_no_message_class_is_created_after_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-python registers each response class it creates lazily (``Class[version]``)
    by weak reference; created by two threads at once, the registered one can be freed and
    every client in the process then fails to read that API's responses. Importing the
    gateway's protocol module creates them all: no lookup after it registers anything."""
    registered: list[str] = []
    monkeypatch.setattr(ResponseClassRegistry, "register_response_class",
                        classmethod(lambda _, cls: registered.append(cls.__name__)))
    for cls in (*protocol._REQUESTS.values(), *protocol._RESPONSES.values()):
        for version in range(cls.min_version, cls.max_version + 1):
            assert cls[version] is cls[version]
    assert registered == []
    assert len(protocol._RESPONSES) == len(ResponseClassRegistry._response_class_registry)
    for key, cls in ResponseClassRegistry._response_class_registry.items():
        assert key == cls.API_KEY  # every registered class alive (a freed one raises)


def test_api_versions_advertises_what_is_served(gateway: KafkaGateway) -> None:
    reply = _exchange(gateway, ApiVersionsRequest[3](client_software_name="raw",
                                                    client_software_version="1"), 3)
    decoded = ApiVersionsResponse.decode(reply, version=3, header=True)
    assert decoded.error_code == 0
    assert {k.api_key: (k.min_version, k.max_version) for k in decoded.api_keys} == SUPPORTED


def test_unsupported_requests_are_answered(gateway: KafkaGateway) -> None:
    for request, version in ((DescribeAclsRequest[1](resource_type_filter=1), 1),
                             (EndTxnRequest[5](transactional_id="t", producer_id=1,
                                               producer_epoch=0, committed=True), 5)):
        reply = _exchange(gateway, request, version)
        assert struct.unpack_from(">i", reply)[0] == 7  # its correlation id
        assert struct.pack(">h", 35) in reply  # UNSUPPORTED_VERSION


def test_a_future_api_versions_gets_the_v0_answer(gateway: KafkaGateway) -> None:
    frame = struct.pack(">hhih", 18, 99, 8, 3) + b"raw"
    with socket.create_connection(gateway.advertised, timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        reply = read_frame(sock)
    decoded = ApiVersionsResponse.decode(reply, version=0, header=True)
    assert decoded.error_code == 35 and len(decoded.api_keys) == len(SUPPORTED)


def test_a_group_with_sdk_members_is_refused_to_kafka_clients(
        gateway: KafkaGateway, live_platform: LocalPlatform, topic: str) -> None:
    live_platform.engine().create_topic(topic, 1)
    with Consumer(topic, endpoint=live_platform.endpoint, group_id=f"mixed-{topic}") as sdk:
        sdk.poll(timeout=1.0)  # joins: a member item exists
        kafka = KafkaConsumer(topic, bootstrap_servers=gateway.bootstrap,
                              group_id=f"mixed-{topic}")
        with pytest.raises(InconsistentGroupProtocolError):
            kafka.poll(timeout_ms=5000)
        kafka.close()


def test_an_sdk_consumer_is_refused_a_group_kafka_clients_use(
        gateway: KafkaGateway, live_platform: LocalPlatform, topic: str) -> None:
    live_platform.engine().create_topic(topic, 1)
    kafka = KafkaConsumer(topic, bootstrap_servers=gateway.bootstrap, group_id=f"k-{topic}")
    try:
        for _ in range(20):
            kafka.poll(timeout_ms=200)
            if kafka.assignment():
                break
        with pytest.raises(GroupActive, match="Kafka clients through the Kafka gateway"):
            Consumer(topic, endpoint=live_platform.endpoint, group_id=f"k-{topic}")
        assert not live_platform.engine().groups.snapshot(f"k-{topic}").members
    finally:
        kafka.close()
