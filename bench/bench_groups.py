"""Consumer-group benchmark: lease-table cost at steady state, and rebalance times.

Run from the repository root:  python -m bench.bench_groups

1. Members of one group read a topic fed at a low constant rate. Every request to the
   groups table is recorded (botocore ``after-call``) and priced as DynamoDB bills it:
   strongly consistent reads 1 RRU per 4 KB (a Query sums its items first), writes
   1 WRU per KB of the larger item image, transactional writes twice that.
2. Time to rebalance after a member joins, leaves gracefully (close) and crashes
   (heartbeats stop), measured until every member owns its final share.
"""

from __future__ import annotations

import math
import os
import platform as pyplatform
import threading
import time
from collections import Counter
from typing import Any

from streamlet import Admin, Consumer, Producer
from streamlet.engine import Engine
from streamlet.local import LocalPlatform

from .bench_core import cpu_model
from .billing import item_size, write_units

STEADY_S = 24.0
SESSION_MS = 6000
WRITE_OPS = {"UpdateItem", "PutItem", "DeleteItem"}


class Meter:
    """Counts groups-table requests and the capacity units they would consume."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.rru = 0.0
        self.wru = 0.0

    def reset(self) -> None:
        """Forget what was counted so far (the settling phase)."""
        with self.lock:
            self.ops.clear()
            self.rru = self.wru = 0.0

    def install(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)
        return client

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["metered_params"] = params  # only recorded: the request is unchanged

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        op = model.name
        rru, wru = self._units(op, context.get("metered_params", {}), parsed)
        if rru or wru:
            with self.lock:
                self.ops[op] += 1
                self.rru += rru
                self.wru += wru

    def _units(self, op: str, params: dict[str, Any], parsed: dict[str, Any]
               ) -> tuple[float, float]:
        if op == "Query" and params.get("TableName") == self.table:
            size = sum(item_size(i) for i in parsed.get("Items", []))
            return max(1, math.ceil(size / 4096)), 0
        if op == "GetItem" and params.get("TableName") == self.table:
            return max(1, math.ceil(item_size(parsed.get("Item", {})) / 4096)), 0
        if op in WRITE_OPS and params.get("TableName") == self.table:
            new = parsed.get("Attributes") or params.get("Item") or params.get("Key", {})
            return 0, write_units(item_size(new))
        if op == "TransactWriteItems":  # commits: a lease item (~150 B) is 1 unit, doubled
            updates = [i for i in params["TransactItems"]
                       if i.get("Update", {}).get("TableName") == self.table]
            return 0, write_units(0, transactional=True) * len(updates)
        return 0, 0


def metered_engine(lp: LocalPlatform, meter: Meter) -> Engine:
    return Engine(meter.install(lp.client("dynamodb")), lp.client("s3"), lp.names)


def feed(lp: LocalPlatform, topic: str, stop: threading.Event, rate: float = 40) -> None:
    with Producer(lp.endpoint, linger_ms=20) as producer:
        while not stop.is_set():
            producer.send(topic, b'{"event": "tick"}')
            time.sleep(1 / rate)


def steady_state(lp: LocalPlatform, members: int, partitions: int) -> dict[str, float]:
    topic = f"bench-groups-{members}-{partitions}-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, partitions)
    meter = Meter(lp.names.groups_table)
    consumers = [Consumer(topic, transport=metered_engine(lp, meter), group_id=topic,
                          session_timeout_ms=SESSION_MS, auto_offset_reset="earliest")
                 for _ in range(members)]
    stop = threading.Event()
    threads = [threading.Thread(target=_poll_loop, args=(c, stop), daemon=True)
               for c in consumers]
    threads.append(threading.Thread(target=feed, args=(lp, topic, stop), daemon=True))
    for t in threads:
        t.start()
    time.sleep(SESSION_MS / 1000)  # settle: everyone joined and balanced
    meter.reset()
    time.sleep(STEADY_S)
    with meter.lock:
        ops, rru, wru = Counter(meter.ops), meter.rru, meter.wru
    stop.set()
    for t in threads:
        t.join(timeout=10)
    for c in consumers:
        c.close()
    per = 60 / STEADY_S / members
    return {"members": members, "partitions": partitions, "rru": rru * per, "wru": wru * per,
            "queries": ops["Query"] * per, "heartbeats": ops["UpdateItem"] * per,
            "commits": ops["TransactWriteItems"] * per}


def _poll_loop(consumer: Consumer, stop: threading.Event) -> None:
    while not stop.is_set():
        consumer.poll(timeout=0.5)


def rebalance_times(lp: LocalPlatform) -> dict[str, float]:
    topic = f"bench-rebalance-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, 8)

    def join() -> Consumer:
        return Consumer(topic, endpoint=lp.endpoint, group_id=topic,
                        session_timeout_ms=SESSION_MS)

    a, b = join(), join()
    _until([a, b], lambda: sorted(len(c.assignment()) for c in (a, b)) == [4, 4])
    started = time.monotonic()
    c = join()
    _until([a, b, c], lambda: sorted(len(x.assignment()) for x in (a, b, c)) == [2, 3, 3])
    times = {"join (2 -> 3 members)": time.monotonic() - started}
    started = time.monotonic()
    c.close()
    _until([a, b], lambda: sorted(len(x.assignment()) for x in (a, b)) == [4, 4])
    times["graceful leave (close)"] = time.monotonic() - started
    assert b._group is not None
    b._group._suspend_heartbeats(True)  # b "crashes": no beats, no polls, no close
    started = time.monotonic()
    _until([a], lambda: len(a.assignment()) == 8)
    times["crash (heartbeats stop)"] = time.monotonic() - started
    a.close()
    return times


def _until(consumers: list[Consumer], done: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(timeout=0.02)
        if done():
            return
    raise RuntimeError("rebalance did not settle")


def main() -> None:
    print("python -m bench.bench_groups")
    print(f"machine: {cpu_model()} x{os.cpu_count()}, "
          f"Python {pyplatform.python_version()}, local moto server")
    print(f"session_timeout_ms={SESSION_MS} (heartbeat every {SESSION_MS // 3} ms, rebalance "
          f"check every {SESSION_MS // 6} ms), auto-commit every 5 s, feed 40 records/s\n")
    with LocalPlatform() as lp:
        rows = [steady_state(lp, m, p) for m, p in ((1, 8), (2, 8), (4, 8), (8, 8), (4, 32))]
        print(f"{'members':>7} {'partitions':>10} {'RRU/min':>8} {'WRU/min':>8} "
              f"{'queries':>8} {'beats':>6} {'commits':>8}   (per member per minute)")
        for r in rows:
            print(f"{r['members']:>7.0f} {r['partitions']:>10.0f} {r['rru']:>8.1f} "
                  f"{r['wru']:>8.1f} {r['queries']:>8.1f} {r['heartbeats']:>6.1f} "
                  f"{r['commits']:>8.1f}")
        print()
        for event, seconds in rebalance_times(lp).items():
            print(f"{event:<26} {seconds:6.2f} s  ({seconds / (SESSION_MS / 1000):.2f} x session)")


if __name__ == "__main__":
    main()
