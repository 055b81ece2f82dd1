"""Several processes in one group against the local platform: split, crash, hand over."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from streamlet import Admin, Producer
from streamlet.local import LocalPlatform

ROOT = Path(__file__).resolve().parents[2]
SESSION_MS = 2000


class Worker:
    def __init__(self, platform: LocalPlatform, topic: str, group: str) -> None:
        env = {**os.environ, **platform.env(), "PYTHONPATH": f"{ROOT}:{ROOT / 'sdk'}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.group_worker", topic, group, str(SESSION_MS)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        self.owned: list[int] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def update(self) -> None:
        while not self.lines.empty():
            line = self.lines.get()
            if "owned" in line:
                self.owned = list(line["owned"])  # type: ignore[call-overload]


def wait_for(workers: list[Worker], predicate, timeout: float = 20.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for w in workers:
            w.update()
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not reached: {[w.owned for w in workers]}")


def test_processes_split_and_hand_over(live_platform: LocalPlatform, topic: str) -> None:
    Admin(live_platform.endpoint).create_topic(topic, 8)
    with Producer(live_platform.endpoint) as producer:
        for i in range(200):
            producer.send(topic, str(i), key=str(i))
    workers = [Worker(live_platform, topic, "procs") for _ in range(3)]
    try:
        wait_for(workers, lambda: sorted(len(w.owned) for w in workers) == [2, 3, 3])
        all_owned = sorted(p for w in workers for p in w.owned)
        assert all_owned == list(range(8))
        crashed = workers.pop(0)
        crashed.proc.send_signal(signal.SIGKILL)  # a crash: no close, no release
        took = wait_for(workers, lambda: sorted(len(w.owned) for w in workers) == [4, 4])
        print(f"crash hand-over {took:.2f} s")
        assert took < 2 * SESSION_MS / 1000  # within 2 session timeouts
        leaving = workers.pop(0)
        leaving.proc.send_signal(signal.SIGTERM)  # graceful: close() hands over at once
        took = wait_for(workers, lambda: len(workers[0].owned) == 8)
        print(f"graceful hand-over {took:.2f} s")
        assert took < SESSION_MS / 1000  # faster than any timeout could expire
        assert leaving.proc.wait(timeout=10) == 0
    finally:
        for w in workers:
            w.proc.kill()
