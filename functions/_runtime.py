"""What every handler shares: the lazily created engine and Powertools' Logger/Metrics/Tracer.

The engine is built on the first request, never at import (moto must start first in
tests, and cold starts stay short), from ``STREAMLET_TABLE_PREFIX`` and
``STREAMLET_BUCKET``. The local gateway binds its own engine per request with
:func:`bound_engine` instead, so handler tests and the gateway never share one; with it,
the endpoint that reaches that engine's storage (:func:`direct_endpoint`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextvars import ContextVar

from aws_lambda_powertools import Logger, Metrics, Tracer

from streamlet.engine import Engine, Names
from streamlet.errors import StreamletError

SERVICE = "streamlet"
MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous payload limit: larger request bodies are refused with 413."""
MAX_HEADER_BYTES = 10 * 1024
"""API Gateway HTTP API's limit on the request line and headers together."""

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Streamlet"),
                  service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))

_bound: ContextVar[Engine | None] = ContextVar("streamlet_engine", default=None)
_bound_endpoint: ContextVar[str | None] = ContextVar("streamlet_direct_endpoint", default=None)


class _ProcessEngine:
    """The container's engine, built on first use and kept across invocations."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.lock = threading.Lock()


_process = _ProcessEngine()


def engine() -> Engine:
    """The engine for this request: a bound one, else the process-wide one from the env."""
    bound = _bound.get()
    if bound is not None:
        return bound
    with _process.lock:
        if _process.engine is None:
            _process.engine = _engine_from_env()
        return _process.engine


@contextlib.contextmanager
def bound_engine(bound: Engine, direct_endpoint: str | None = None) -> Iterator[None]:
    """Serve the requests handled inside this block (this thread) with ``bound``, whose
    storage ``direct_endpoint`` reaches (what ``GET /v1/deployment`` answers)."""
    token = _bound.set(bound)
    endpoint_token = _bound_endpoint.set(direct_endpoint)
    try:
        yield
    finally:
        _bound_endpoint.reset(endpoint_token)
        _bound.reset(token)


def direct_endpoint() -> str:
    """The endpoint that reaches this request's storage directly: the bound one (the local
    gateway's), else ``direct://PREFIX?bucket=B&region=R`` of the tables and bucket the
    environment names, in the function's region."""
    if _bound.get() is None:
        from streamlet.transport.direct import direct_endpoint as written

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return written(_names_from_env(), region or "us-east-1")
    bound = _bound_endpoint.get()
    if bound is None:
        raise StreamletError("This server was not told which endpoint reaches its storage "
                             "directly (bound_engine without direct_endpoint).")
    return bound


def local_mode() -> None:
    """Running outside Lambda (the local gateway): no EMF metrics on stdout, no cold start."""
    from aws_lambda_powertools.metrics.provider import cold_start

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    cold_start.is_cold_start = False
    # concurrent requests share Powertools' metric set: one may flush another's metrics
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def reset() -> None:
    """Forget the process-wide engine (tests simulate a fresh Lambda container with it)."""
    with _process.lock:
        _process.engine = None


def _engine_from_env() -> Engine:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=3, read_timeout=10)
    return Engine(boto3.client("dynamodb", config=config), boto3.client("s3", config=config),
                  _names_from_env())


def _names_from_env() -> Names:
    prefix = os.environ.get("STREAMLET_TABLE_PREFIX", "streamlet")
    return Names(prefix=prefix, bucket=os.environ.get("STREAMLET_BUCKET", f"{prefix}-data"))
