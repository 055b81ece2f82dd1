"""kafka-python (3.x) against the gateway: topics, every codec, groups, seeks, restarts,
a group of three losing a member, and records crossing to and from Streamlet's SDK."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from streamlet import Consumer, Producer
from streamlet.local import LocalPlatform

from .conftest import eventually

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


def _poll_all(consumer: KafkaConsumer, count: int, timeout: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    return got


def test_every_codec_round_trips_in_a_group_with_commits_seeks_and_a_restart(
        bootstrap: str, admin: KafkaAdminClient, topic: str,
        live_platform: LocalPlatform) -> None:
    admin.create_topics([NewTopic(topic, 3, 1)])
    sent = {}
    for codec in CODECS:
        producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                                 linger_ms=5)
        futures = [producer.send(topic, key=f"key-{i}".encode(),
                                 value=f"{codec or 'none'}-{i}".encode(),
                                 headers=[("codec", (codec or "none").encode())])
                   for i in range(10)]
        producer.flush()
        for future in futures:
            md = future.get(10)
            sent[(md.partition, md.offset)] = future
        producer.close()
        time.sleep(0.02)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    got = _poll_all(consumer, 50)
    assert len(got) == 50
    assert {(r.partition, r.offset) for r in got} == set(sent)
    for record in got:
        codec, i = record.value.decode().rsplit("-", 1)
        assert record.key == f"key-{i}".encode()
        assert record.headers == [("codec", codec.encode())]
    consumer.commit()
    leases = live_platform.engine().groups.snapshot(f"g-{topic}").leases  # one set of offsets
    assert {(tp.partition, lease.committed) for tp, lease in leases.items()} == {
        (p, max(o for q, o in sent if q == p) + 1) for p, _ in sent}

    tp = max((TopicPartition(topic, p) for p in range(3)),
             key=lambda t: sum(1 for r in got if r.partition == t.partition))
    mine = sorted((r for r in got if r.partition == tp.partition), key=lambda r: r.offset)
    consumer.seek(tp, mine[2].offset)  # by offset
    again = [r for r in _poll_all(consumer, 1) if r.partition == tp.partition]
    assert again and again[0].offset == mine[2].offset
    middle = mine[len(mine) // 2]
    found = consumer.offsets_for_times({tp: middle.timestamp})[tp]  # by timestamp
    assert found.offset <= middle.offset and found.timestamp == middle.timestamp
    assert all(r.timestamp < middle.timestamp for r in mine if r.offset < found.offset)
    consumer.close()

    restarted = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                              auto_offset_reset="earliest", enable_auto_commit=False)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, key=b"late", value=b"after-restart").get(10)
    producer.close()
    after = _poll_all(restarted, 1, timeout=10)
    time.sleep(0.5)
    after += [r for rs in restarted.poll(timeout_ms=500).values() for r in rs]
    assert [r.value for r in after] == [b"after-restart"]  # committed records not re-read
    restarted.close()


MEMBER = """
import sys, time
from kafka import KafkaConsumer
c = KafkaConsumer(sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[3],
                  session_timeout_ms=6000, heartbeat_interval_ms=500)
while True:
    c.poll(timeout_ms=200)
    print(",".join(str(tp.partition) for tp in c.assignment()), flush=True)
"""


def test_a_group_of_three_rebalances_when_one_member_is_killed(
        bootstrap: str, admin: KafkaAdminClient, topic: str) -> None:
    admin.create_topics([NewTopic(topic, 3, 1)])
    group = f"g3-{topic}"
    child = subprocess.Popen([sys.executable, "-c", MEMBER, bootstrap, topic, group],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    child_assignment: list[str] = [""]
    threading.Thread(target=lambda: [child_assignment.__setitem__(0, line.strip())
                                     for line in child.stdout or ()], daemon=True).start()
    stop = threading.Event()
    members = [KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             session_timeout_ms=6000, heartbeat_interval_ms=500)
               for _ in range(2)]
    assignments: list[set[int]] = [set(), set()]

    def run(i: int) -> None:
        while not stop.is_set():
            members[i].poll(timeout_ms=200)
            assignments[i] = {tp.partition for tp in members[i].assignment()}

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: all(len(a) == 1 for a in assignments) and child_assignment[0]
                   and {int(p) for p in child_assignment[0].split(",")} | assignments[0]
                   | assignments[1] == {0, 1, 2}, timeout=30,
                   what=lambda: f"three members, one each: {assignments} {child_assignment}")
        child.send_signal(signal.SIGKILL)  # no LeaveGroup: the session must expire
        child.wait()
        eventually(lambda: assignments[0] | assignments[1] == {0, 1, 2}
                   and not assignments[0] & assignments[1], timeout=30,
                   what="the survivors to take the dead member's partition")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for member in members:
            member.close()
        if child.poll() is None:
            child.kill()


def test_records_cross_between_kafka_python_and_the_sdk(
        bootstrap: str, admin: KafkaAdminClient, topic: str,
        live_platform: LocalPlatform) -> None:
    admin.create_topics([NewTopic(topic, 2, 1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    md = producer.send(topic, key=b"from-kafka", value=b"v1", headers=[("h", b"1")],
                       timestamp_ms=1_700_000_000_123).get(10)
    producer.close()
    with Consumer(topic, endpoint=live_platform.endpoint, auto_offset_reset="earliest") as sdk:
        records = eventually(lambda: sdk.poll(timeout=1.0), what="the SDK to read it")
    (record,) = records
    assert (record.partition, record.offset, record.key, record.value, record.headers,
            record.timestamp) == (md.partition, md.offset, b"from-kafka", b"v1",
                                  [("h", b"1")], 1_700_000_000_123)

    with Producer(endpoint=live_platform.endpoint) as sdk_producer:
        sent = sdk_producer.send(topic, b"v2", key=b"from-sdk", headers=[("h", b"2")],
                                 timestamp_ms=1_700_000_000_456).result(10)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    tp = TopicPartition(topic, sent.partition)
    consumer.assign([tp])
    consumer.seek(tp, sent.offset)
    (got,) = _poll_all(consumer, 1)
    consumer.close()
    assert (got.key, got.value, got.headers, got.timestamp) == (
        b"from-sdk", b"v2", [("h", b"2")], 1_700_000_000_456)
