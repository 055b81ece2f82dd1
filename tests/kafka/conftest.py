"""One Kafka gateway per test module, over the session's local platform.

The clients are real ones (kafka-python, aiokafka, confluent-kafka/librdkafka, kcat):
nothing here speaks the protocol for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from streamlet.kafka import KafkaGateway
from streamlet.local import LocalPlatform

T = TypeVar("T")


@pytest.fixture(scope="module")
def gateway(platform: LocalPlatform) -> Iterator[KafkaGateway]:
    platform.engine().provision(platform.client("s3"))
    gw = KafkaGateway(platform.engine(), port=0).start_background()
    yield gw
    gw.stop()


@pytest.fixture
def bootstrap(gateway: KafkaGateway, live_platform: LocalPlatform) -> str:
    return gateway.bootstrap


def eventually(check: Callable[[], T | None], timeout: float = 20.0, every: float = 0.1,
               what: str | Callable[[], str] = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out waiting for {said}")
        time.sleep(every)
