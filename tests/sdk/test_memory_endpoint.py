"""``memory://``: the engine over in-process moto, shared by the clients of one process,
and invisible to everything else in it (no environment change, no global mock)."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from moto import mock_aws
from moto.core.models import botocore_stubber

from streamlet import (
    Admin,
    Consumer,
    InvalidRequest,
    Producer,
    TopicNotFound,
    TopicPartition,
)
from streamlet.aio import AIOAdmin, AIOConsumer, AIOProducer
from streamlet.transport import connect

_stores = itertools.count()


@pytest.fixture
def store() -> str:
    """A store no other test uses."""
    return f"memory://t{os.getpid()}-{next(_stores)}"


def test_clients_of_one_store_share_it(store: str) -> None:
    with Admin(store) as admin:
        admin.create_topic("orders", partitions=2)
    with Producer(store) as producer:
        sent = producer.send("orders", b"hello", partition=1).result(timeout=10)
    with Consumer(endpoint=store, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("orders", 1)])
        records = consumer.poll(timeout=5)
    assert (sent.partition, sent.offset) == (1, 0)
    assert [(r.offset, r.value) for r in records] == [(0, b"hello")]


def test_stores_are_separate(store: str) -> None:
    with Admin(store) as admin:
        admin.create_topic("only-here")
    with Admin(f"{store}x") as other, pytest.raises(TopicNotFound):
        other.describe_topic("only-here")


def test_it_changes_no_environment_and_patches_no_other_client(store: str) -> None:
    before = dict(os.environ)
    with Admin(store) as admin:
        admin.list_topics()
    assert dict(os.environ) == before
    assert botocore_stubber.enabled is False  # moto's process-wide mock stays off


@pytest.mark.parametrize("bad", ["memory://Upper", "memory://a_b", "memory://a/b",
                                 "memory://a?b=1", f"memory://{'x' * 41}"])
def test_bad_store_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="memory://"):
        connect(bad)


def test_a_moto_reset_is_survived_by_the_next_connection(store: str) -> None:
    """Leaving mock_aws resets all of moto's state in the process, these stores
    included; the next connection provisions the tables again (empty)."""
    with Admin(store) as admin:
        admin.create_topic("before-reset")
    with mock_aws():
        pass
    with Admin(store) as admin:
        assert admin.list_topics() == []
        admin.create_topic("after-reset")
        assert admin.list_topics() == ["after-reset"]


def test_the_asyncio_clients_run_on_it(store: str) -> None:
    async def round_trip() -> list[bytes | None]:
        async with AIOAdmin(store) as admin:
            await admin.create_topic("events")
        async with AIOProducer(store) as producer:
            for i in range(3):
                await producer.send("events", f"e{i}".encode())
        async with AIOConsumer("events", endpoint=store,
                               auto_offset_reset="earliest") as consumer:
            return [(await consumer.getone()).value for _ in range(3)]

    assert asyncio.run(round_trip()) == [b"e0", b"e1", b"e2"]
