"""Section 3: end-to-end latency, just before send() to the record returned by poll().

The producer and consumer run the Streamlet SDK in direct mode, each on its own engine
(as separate processes would), whose boto3 clients carry a ``CallTimer``; the moto
server runs in this process, so its gen-2 GC pauses are recorded too.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

from streamlet import Admin, Consumer, Producer
from streamlet.engine import Engine
from streamlet.local import LocalPlatform

from .events import make_values
from .timing import CallTimer, GcPauses

POLL_TIMEOUT_S = 0.05


@dataclass
class Latency:
    """Send and receive times (perf_counter seconds) by record index, plus observers."""

    rate: float
    seconds: float
    linger_ms: float
    sent: dict[int, float] = field(default_factory=dict)
    received: dict[int, float] = field(default_factory=dict)
    out_of_order: int = 0
    timer: CallTimer = field(default_factory=CallTimer)
    gc: GcPauses = field(default_factory=GcPauses)

    def millis(self, first: int = 0, last: int | None = None) -> list[float]:
        indexes = [i for i in sorted(self.sent)[first:last] if i in self.received]
        return [(self.received[i] - self.sent[i]) * 1000 for i in indexes]

    def window(self, first: int, last: int) -> tuple[float, float]:
        """perf_counter span from sending record ``first`` to sending record ``last``."""
        return self.sent[first], self.sent[min(last, len(self.sent) - 1)]


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99), inclusive method."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _consume(consumer: Consumer, result: Latency, stop: threading.Event) -> None:
    last = -1
    while not stop.is_set():
        records = consumer.poll(timeout=POLL_TIMEOUT_S)
        now = time.perf_counter()
        for record in records:
            if record.value is None or not record.value[:8].isdigit():
                continue  # the warm-up record
            index = int(record.value[:8])
            result.received[index] = now
            result.out_of_order += index < last
            last = index


def _produce(producer: Producer, topic: str, result: Latency, values: list[bytes]) -> None:
    start = time.perf_counter()
    for i, value in enumerate(values):
        delay = start + i / result.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        result.sent[i] = time.perf_counter()
        producer.send(topic, b"%08d " % i + value, key=b"k")
    producer.flush()


def _engine(lp: LocalPlatform, timer: CallTimer) -> Engine:
    return Engine(timer.attach(lp.client("dynamodb")), lp.client("s3"), lp.names)


def measure_latency(lp: LocalPlatform, rate: float, seconds: float,
                    linger_ms: float) -> Latency:
    """Produce at ``rate`` records/s for ``seconds`` to one partition; a thread polls."""
    topic = f"bench-latency-{time.time_ns()}"
    admin = Admin(lp.endpoint)
    admin.create_topic(topic, 1)
    result = Latency(rate, seconds, linger_ms)
    values = make_values("100 B", int(rate * seconds), seed=13)
    stop = threading.Event()
    with Consumer(topic, transport=_engine(lp, result.timer), auto_offset_reset="latest") \
            as consumer, Producer(transport=_engine(lp, result.timer),
                                  linger_ms=linger_ms) as producer, result.gc:
        consumer.poll(timeout=0)  # fixes the position at the (empty) end
        producer.send(topic, b"warm-up", key=b"k").result()  # metadata + producer id
        thread = threading.Thread(target=_consume, args=(consumer, result, stop), daemon=True)
        thread.start()
        _produce(producer, topic, result, values)
        deadline = time.monotonic() + 10
        while len(result.received) < len(values) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(timeout=5)
    admin.delete_topic(topic)
    return result
