"""Producer, Consumer and Admin close the transports they made, not the ones they were given;
batch writes back off on unprocessed items."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet.admin
import streamlet.consumer
import streamlet.producer
from streamlet import Admin, Consumer, Producer
from streamlet.engine.aws import UNPROCESSED_ATTEMPTS, batch_write
from streamlet.errors import Throttled


class Closable:
    """Stands in for a transport; only close() is ever called here."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("make", [
    lambda t: Producer(transport=t), lambda t: Consumer(transport=t),
    lambda t: Admin(transport=t)], ids=["producer", "consumer", "admin"])
def test_a_transport_passed_in_stays_open(make: Any) -> None:
    transport = Closable()
    make(transport).close()
    assert transport.closed == 0


@pytest.mark.parametrize(("module", "make"), [
    (streamlet.producer, Producer), (streamlet.consumer, Consumer), (streamlet.admin, Admin)],
    ids=["producer", "consumer", "admin"])
def test_a_transport_made_from_the_endpoint_is_closed_once(
        monkeypatch: pytest.MonkeyPatch, module: Any, make: Any) -> None:
    transport = Closable()
    monkeypatch.setattr(module, "connect", lambda endpoint: transport)
    client = make(endpoint="direct://x")
    client.close()
    client.close()
    assert transport.closed == 1


class Unprocessing:
    """A DynamoDB client that leaves ``stubborn`` items unprocessed ``rounds`` times."""

    def __init__(self, rounds: int, stubborn: int = 2) -> None:
        self.rounds, self.stubborn, self.sizes = rounds, stubborn, []

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        (table, requests), = RequestItems.items()
        self.sizes.append(len(requests))
        if len(self.sizes) <= self.rounds:
            return {"UnprocessedItems": {table: requests[:self.stubborn]}}
        return {}


def test_unprocessed_items_are_resubmitted_after_growing_pauses() -> None:
    client, pauses = Unprocessing(rounds=3), []
    batch_write(client, "t", [{"PutRequest": {}}] * 10, "write", sleep=pauses.append)  # type: ignore[arg-type]
    assert client.sizes == [10, 2, 2, 2]
    assert len(pauses) == 3 and all(p >= 0 for p in pauses)
    assert max(pauses) <= 0.05 * 2**2  # full jitter under 50, 100, 200 ms


def test_items_that_stay_unprocessed_become_a_retriable_error() -> None:
    client, pauses = Unprocessing(rounds=100), []
    with pytest.raises(Throttled, match="2 items stayed unprocessed"):
        batch_write(client, "t", [{"PutRequest": {}}] * 3, "write", sleep=pauses.append)  # type: ignore[arg-type]
    assert len(client.sizes) == UNPROCESSED_ATTEMPTS
