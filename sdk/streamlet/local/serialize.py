"""Serializing in-process moto (``mock_aws``) the way the local platform serializes its server.

In-process moto evaluates a conditional write in several steps without a lock, so
concurrent threads lose updates (8 threads x 100 compare-and-set increments gave
574-642 distinct values of 800 here). Tests that run threads against ``mock_aws``
wrap them in :func:`serialized_moto`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.RLock()


@contextlib.contextmanager
def serialized_moto() -> Iterator[None]:
    """While active, every in-process moto request runs under one process-wide lock."""
    from moto.core.botocore_stubber import BotocoreStubber

    from . import motofix

    motofix.install()
    original = BotocoreStubber.__call__

    def locked(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = locked  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]
