"""aiokafka against the gateway: every codec in a group with commits, seeks and a restart."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


async def _drain(consumer: AIOKafkaConsumer, count: int, timeout: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got.extend(records)
    return got


async def _scenario(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    await admin.close()
    sent = {}
    for codec in CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                                    enable_idempotence=True, linger_ms=5)
        await producer.start()
        futures = [await producer.send(topic, f"{codec}-{i}".encode(), key=f"k{i}".encode(),
                                       headers=[("codec", str(codec).encode())])
                   for i in range(10)]
        for md in await asyncio.gather(*futures):
            sent[(md.partition, md.offset)] = md
        await producer.stop()
        await asyncio.sleep(0.02)

    group = f"g-{topic}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got = await _drain(consumer, 50)
    assert {(r.partition, r.offset) for r in got} == set(sent)
    for record in got:
        codec, i = record.value.decode().rsplit("-", 1)
        assert record.key == f"k{i}".encode() and record.headers == (("codec", codec.encode()),)
    await consumer.commit()
    tp = TopicPartition(topic, max(range(3), key=lambda p: sum(r.partition == p for r in got)))
    mine = sorted((r for r in got if r.partition == tp.partition), key=lambda r: r.offset)
    consumer.seek(tp, mine[1].offset)  # by offset
    again = [r for r in await _drain(consumer, 1) if r.partition == tp.partition]
    assert again[0].offset == mine[1].offset
    middle = mine[len(mine) // 2]
    found = (await consumer.offsets_for_times({tp: middle.timestamp}))[tp]  # by timestamp
    assert found.offset <= middle.offset and found.timestamp == middle.timestamp
    await consumer.stop()

    restarted = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
    await restarted.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b"after-restart", key=b"late")
    await producer.stop()
    after = await _drain(restarted, 2, timeout=6)
    assert [r.value for r in after] == [b"after-restart"]
    await restarted.stop()


def test_every_codec_round_trips_in_a_group_with_commits_seeks_and_a_restart(
        bootstrap: str, topic: str) -> None:
    asyncio.run(_scenario(bootstrap, topic))
