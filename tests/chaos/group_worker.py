"""A group member process for multi-process tests: prints its assignment as JSON lines.

Usage: python -m tests.chaos.group_worker TOPIC GROUP SESSION_MS  (STREAMLET_ENDPOINT set)
SIGTERM closes the consumer (commit, release, leave); SIGKILL is a crash.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from streamlet import Consumer, StreamletError


def main() -> None:
    topic, group, session_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = Consumer(topic, group_id=group, auto_offset_reset="earliest",
                        session_timeout_ms=session_ms)
    last: list[int] = []
    read = 0
    while not stop.is_set():
        try:
            read += len(consumer.poll(timeout=0.1))
        except StreamletError:
            continue
        owned = sorted(tp.partition for tp in consumer.assignment())
        if owned != last:
            last = owned
            print(json.dumps({"owned": owned, "read": read}), flush=True)
    consumer.close()
    print(json.dumps({"closed": True, "read": read}), flush=True)


if __name__ == "__main__":
    main()
