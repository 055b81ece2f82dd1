"""Time, injectable: one Clock for lease liveness, the engine and the consumer.

Two readings, never mixed: ``monotonic()`` measures intervals on this process (liveness
judgements, pauses, deadlines) and ``time()`` is wall-clock seconds since the epoch
(what is stored: append times, expiry, committed-at). Tests and simulations inject their
own clock; everything else uses :data:`SYSTEM`.

Example:
    >>> clock = ManualClock(100.0)
    >>> clock.advance(2.5)
    >>> clock.monotonic(), clock.time()
    (102.5, 102.5)
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """A monotonic and a wall clock, in seconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals on this host only)."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch (for what is stored or shared between hosts)."""
        ...


class SystemClock:
    """The host's clocks: :func:`time.monotonic` and :func:`time.time`."""

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()


SYSTEM: Clock = SystemClock()


@dataclass
class ManualClock:
    """A clock that moves only when told to (both readings are ``now``)."""

    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ShiftedClock:
    """The host's clocks with the wall clock ``offset`` seconds off (a skewed host)."""

    def __init__(self, offset: float, base: Clock = SYSTEM) -> None:
        self.offset, self._base = offset, base

    def monotonic(self) -> float:
        return self._base.monotonic()

    def time(self) -> float:
        return self._base.time() + self.offset


class WallAsMonotonic:
    """``clock``'s wall time as the monotonic reading too.

    For an observer that keeps no process between requests (a REST consumer instance):
    what it remembers must mean something to the next Lambda that serves it, and AWS
    hosts keep wall clocks far closer together than any session timeout.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def monotonic(self) -> float:
        return self._clock.time()

    def time(self) -> float:
        return self._clock.time()
