"""The producer's metrics, with kafka-python's (and Java's) names.

Rates, averages and maxima cover the last :data:`WINDOW_S` seconds (Kafka samples two
30-second windows); ``*-total`` counters cover the producer's life. Everything is
recorded once per batch, never per record, so keeping metrics costs nothing on
``send``.

Example:
    >>> from streamlet.clock import ManualClock
    >>> clock = ManualClock(0.0)
    >>> metrics = ProducerMetrics(clock)
    >>> clock.advance(10)
    >>> metrics.batch_sent(records=100, size=4096, latency_s=0.02, queued_s=0.005)
    >>> snap = metrics.snapshot(buffer_total=1024, buffer_available=1024, in_flight=0)
    >>> snap["record-send-rate"], snap["batch-size-avg"], snap["records-per-request-avg"]
    (10.0, 4096.0, 100.0)
"""

from __future__ import annotations

import threading
from collections import deque

from .clock import SYSTEM, Clock

WINDOW_S = 30
"""Rates and averages cover this many seconds (or the producer's age, if shorter)."""


class _Series:
    """Samples in one-second buckets ``[second, count, total, max]`` over the window."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()

    def record(self, value: float, now: float) -> None:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            last = buckets[-1]
            last[1] += 1
            last[2] += value
            last[3] = max(last[3], value)
        else:
            buckets.append([second, 1, value, value])
        self._expire(second)

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - WINDOW_S:
            self._buckets.popleft()

    def window(self, now: float) -> tuple[float, float, float]:
        """(samples, their total, their maximum) within the window."""
        self._expire(int(now))
        count = sum(b[1] for b in self._buckets)
        total = sum(b[2] for b in self._buckets)
        return count, total, max((b[3] for b in self._buckets), default=0.0)


class ProducerMetrics:
    """What a producer has sent, retried and failed (thread-safe)."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self._clock = clock
        self._started = clock.monotonic()
        self._lock = threading.Lock()
        self._records, self._bytes = _Series(), _Series()
        self._latency, self._queued = _Series(), _Series()
        self._retries, self._errors = _Series(), _Series()
        self._totals = {"record-send-total": 0.0, "byte-total": 0.0, "batch-total": 0.0,
                        "record-retry-total": 0.0, "record-error-total": 0.0,
                        "buffer-exhausted-total": 0.0}

    def batch_sent(self, records: int, size: int, latency_s: float, queued_s: float) -> None:
        """One batch acknowledged: its records, bytes, request latency and time queued."""
        now = self._clock.monotonic()
        with self._lock:
            self._records.record(records, now)
            self._bytes.record(size, now)
            self._latency.record(latency_s * 1000, now)
            self._queued.record(queued_s * 1000, now)
            self._totals["record-send-total"] += records
            self._totals["byte-total"] += size
            self._totals["batch-total"] += 1

    def retried(self, records: int) -> None:
        """One batch sent again after a retriable error."""
        self._count(self._retries, "record-retry-total", records)

    def failed(self, records: int) -> None:
        """One batch failed for good."""
        self._count(self._errors, "record-error-total", records)

    def exhausted(self) -> None:
        """A ``send`` gave up waiting for buffer memory."""
        with self._lock:
            self._totals["buffer-exhausted-total"] += 1

    def _count(self, series: _Series, total: str, records: int) -> None:
        now = self._clock.monotonic()
        with self._lock:
            series.record(records, now)
            self._totals[total] += records

    def snapshot(self, buffer_total: int, buffer_available: int,
                 in_flight: int) -> dict[str, float]:
        """Every metric by its kafka-python name."""
        now = self._clock.monotonic()
        elapsed = max(1.0, min(float(WINDOW_S), now - self._started))
        with self._lock:
            batches, records, _ = self._records.window(now)
            _, size, size_max = self._bytes.window(now)
            requests, latency, latency_max = self._latency.window(now)
            _, queued, queued_max = self._queued.window(now)
            retries = self._retries.window(now)[1]
            errors = self._errors.window(now)[1]
            totals = dict(self._totals)
        return {
            "record-send-rate": records / elapsed, "byte-rate": size / elapsed,
            "batch-size-avg": size / batches if batches else 0.0,
            "batch-size-max": size_max,
            "records-per-request-avg": records / batches if batches else 0.0,
            "request-rate": requests / elapsed,
            "request-latency-avg": latency / requests if requests else 0.0,
            "request-latency-max": latency_max,
            "record-queue-time-avg": queued / batches if batches else 0.0,
            "record-queue-time-max": queued_max,
            "record-retry-rate": retries / elapsed, "record-error-rate": errors / elapsed,
            "requests-in-flight": float(in_flight),
            "buffer-total-bytes": float(buffer_total),
            "buffer-available-bytes": float(buffer_available),
            **totals,
        }
