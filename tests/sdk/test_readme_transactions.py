"""The README's exactly-once enrichment service, run as the README shows it (on a
platform of its own), with a processor crash in the middle: each order's outputs appear
once, and the group's offsets are where the outputs end."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from streamlet import Admin, Consumer, Producer, TopicPartition, processing

README = Path(__file__).resolve().parents[2] / "README.md"
_stores = itertools.count()


def example() -> tuple[str, str]:
    """The example's code without its last line, and that line (the run call)."""
    found = re.search(r"^## Exactly once: transactions\n.*?```python\n(.*?)```",
                      README.read_text(), re.MULTILINE | re.DOTALL)
    assert found, "README.md has no example under '## Exactly once: transactions'"
    *body, last = found[1].rstrip().splitlines()
    assert last.startswith("processing.run(consumer, producer, enrich)")
    return "\n".join(body), last


def read_all(endpoint: str, topic: str) -> list[Any]:
    with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as reader:
        return [json.loads(r.value) for r in reader.poll(timeout=2)]


def test_the_readme_enrichment_service_writes_each_output_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"memory://readme{os.getpid()}-{next(_stores)}"
    monkeypatch.setenv("STREAMLET_ENDPOINT", endpoint)
    admin = Admin(endpoint)
    for topic in ("orders", "orders.enriched", "orders.large"):
        admin.create_topic(topic, partitions=2)
    orders = [{"id": n, "country": ("DE", "US")[n % 2], "total": n * 150} for n in range(20)]

    def send_orders(batch: list[dict[str, Any]]) -> None:
        with Producer(endpoint) as producer:
            for order in batch:
                producer.send("orders", json.dumps(order).encode(),
                              key=str(order["id"]).encode())

    code, run_line = example()
    assert "max_polls" not in run_line  # the README runs it until stopped

    def service() -> dict[str, Any]:
        namespace: dict[str, Any] = {}
        exec(compile(code, str(README), "exec"), namespace)
        return namespace

    send_orders(orders[:10])
    first = service()
    processing.run(first["consumer"], first["producer"], first["enrich"], max_polls=1)
    # it crashes inside its next transaction, an output already sent
    first["producer"].begin_transaction()
    first["producer"].send("orders.enriched", {"id": -1}, key=b"-1")
    first["producer"].flush()
    first["consumer"].close(autocommit=False)
    send_orders(orders[10:])
    second = service()  # restarted with the same transactional id: the first is fenced
    stats = processing.run(second["consumer"], second["producer"], second["enrich"],
                           max_polls=6)
    enriched = read_all(endpoint, "orders.enriched")
    assert sorted(o["id"] for o in enriched) == list(range(20))  # each once, not the -1
    assert all(o["region"] == ("eu" if o["country"] == "DE" else "other") for o in enriched)
    assert sorted(o["id"] for o in read_all(endpoint, "orders.large")) == list(range(7, 20))
    committed = admin.list_consumer_group_offsets("enricher")
    ends = {TopicPartition("orders", info.partition): info.high
            for info in admin.describe_topic("orders").partition_info}
    assert committed == ends and stats.committed >= 1 and stats.records == 10
    second["consumer"].close()
    second["producer"].close()
    admin.close()
