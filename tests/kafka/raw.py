"""One raw client connection to a gateway: kafka-python's request and response classes
framed over a socket, for what no client sends on purpose (gaps, odd byte limits)."""

from __future__ import annotations

import socket
import struct
from typing import Any

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from streamlet.kafka import KafkaGateway


def read_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock``; fails the test if the gateway closes it first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the gateway closed the connection"
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    """One size-prefixed response frame (its header and body)."""
    (size,) = struct.unpack(">i", read_exactly(sock, 4))
    return read_exactly(sock, size)


class Connection:
    """Requests on one connection, answered in order."""

    def __init__(self, gateway: KafkaGateway) -> None:
        self.sock = socket.create_connection(gateway.advertised, timeout=20)
        self.correlation = 0

    def exchange(self, request: Any, response: Any, version: int) -> Any:
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="raw")
        self.sock.sendall(bytes(request.encode(header=True, framed=True)))
        return response[version].decode(read_frame(self.sock), version=version, header=True)

    def produce(self, topic: str, batch: bytes, partition: int = 0,
                timeout_ms: int = 10_000) -> tuple[int, int]:
        """(error code, base offset) of one batch, acks=all."""
        cls = ProduceRequest[7]
        data = cls.TopicProduceData
        request = cls(transactional_id=None, acks=-1, timeout_ms=timeout_ms, topic_data=[
            data(name=topic, partition_data=[data.PartitionProduceData(index=partition,
                                                                       records=batch)])])
        answer = self.exchange(request, ProduceResponse, 7).responses[0]
        part = answer.partition_responses[0]
        return part.error_code, part.base_offset

    def fetch(self, topic: str, partitions: list[int], max_bytes: int,
              partition_max_bytes: int = 1 << 20, offset: int = 0,
              isolation_level: int = 0) -> list[Any]:
        """The partitions' answers to one Fetch (v11, no waiting), in the order asked."""
        cls = FetchRequest[11]
        t = cls.FetchTopic
        request = cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=max_bytes,
                      isolation_level=isolation_level, session_id=0, session_epoch=-1,
                      topics=[t(topic=topic, partitions=[t.FetchPartition(
                          partition=p, current_leader_epoch=-1, fetch_offset=offset,
                          log_start_offset=-1, partition_max_bytes=partition_max_bytes)
                          for p in partitions])], forgotten_topics_data=[], rack_id="")
        reply = self.exchange(request, FetchResponse, 11)
        return list(reply.responses[0].partitions)

    def close(self) -> None:
        self.sock.close()
