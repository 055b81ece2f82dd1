"""Observers that only record: botocore call durations and gen-2 GC pauses."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallTimer:
    """Start time and duration (perf_counter seconds) of every call, by operation name."""

    calls: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)
        return client

    def _before(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_t0"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        start = context.get("bench_t0")
        if start is not None:
            self.calls.setdefault(model.name, []).append((start, time.perf_counter() - start))

    def durations(self, op: str, start: float, end: float) -> list[float]:
        return [d for t, d in self.calls.get(op, []) if start <= t < end]


@dataclass
class GcPauses:
    """Start time and duration of each generation-2 collection while installed."""

    pauses: list[tuple[float, float]] = field(default_factory=list)
    _started: float = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def between(self, start: float, end: float) -> list[float]:
        return [d for t, d in self.pauses if start <= t < end]
