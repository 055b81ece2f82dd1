"""`streamlet transactions list` against the shared local platform."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from streamlet import Admin, Producer
from streamlet.cli import app
from tests.cli.test_cli import assert_fails

HEADER = ["TRANSACTIONAL-ID", "NUMBER", "PRODUCER-ID", "EPOCH", "STATE", "STARTED", "TIMEOUT",
          "REASON"]


def _rows(endpoint: str, *args: str) -> list[list[str]]:
    result = CliRunner().invoke(app, ["--endpoint", endpoint, "transactions", "list", *args])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    if not lines:
        return []
    first, *rows = (line.split() for line in lines)
    assert first[:7] == HEADER[:7]
    return [row for row in rows]


def _open(endpoint: str, tid: str, topic: str, timeout_ms: int) -> Producer:
    producer = Producer(endpoint, transactional_id=tid, transaction_timeout_ms=timeout_ms,
                        linger_ms=1)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"pending")
    producer.flush()
    return producer


def test_open_transactions_are_listed_with_their_timeout(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    waiting = _open(endpoint, f"{topic}-open", topic, 60_000)
    stuck = _open(endpoint, f"{topic}-stuck", topic, 1000)
    begun = time.monotonic()
    with Producer(endpoint, transactional_id=f"{topic}-done", linger_ms=1) as done:
        done.init_transactions()
        with done.transaction():
            done.send(topic, b"ok")
    time.sleep(max(0.0, 1.1 - (time.monotonic() - begun)))
    mine = {r[0]: r for r in _rows(endpoint) if r[0].startswith(topic)}
    assert {tid: row[4] for tid, row in mine.items()} == {
        f"{topic}-open": "OPEN", f"{topic}-stuck": "OPEN"}
    assert mine[f"{topic}-open"][6].endswith("s") and mine[f"{topic}-open"][7] == "-"
    assert mine[f"{topic}-stuck"][6] == "expired"
    ended = {r[0]: r[4] for r in _rows(endpoint, "--all") if r[0].startswith(topic)}
    assert ended == {f"{topic}-open": "OPEN", f"{topic}-stuck": "OPEN",
                     f"{topic}-done": "COMMITTED"}
    waiting.close()  # aborts what it left open
    stuck.close()
    ended = {r[0]: (r[4], " ".join(r[7:])) for r in _rows(endpoint, "--all")
             if r[0].startswith(topic)}
    assert ended[f"{topic}-open"] == ("ABORTED", "aborted by the producer")
    assert ended[f"{topic}-stuck"][0] == "ABORTED"  # by the producer, or as timed out


def test_bad_invocations_fail_cleanly(endpoint: str) -> None:
    assert_fails(CliRunner().invoke(app, ["--endpoint", endpoint, "transactions", "list",
                                          "--bogus"]), "No such option")
