"""``memory://``: the engine over in-process moto, with no server, no port and no thread.

For tests that must start fast: ``Producer("memory://")`` and ``Consumer("memory://")``
in one process share one store. ``memory://NAME`` names a separate store (tables
``memory-NAME-*``); ``memory://`` is the store ``memory`` (tables ``memory-*``).

Only Streamlet's own boto3 clients are routed to moto (a ``before-send`` handler on each
client, run under the lock that :func:`~streamlet.local.serialize.serialized_moto` uses,
because in-process moto is not atomic under concurrent requests). Unlike ``mock_aws`` it
sets no environment variables, patches no other client and resets nothing, so it runs
beside a local platform or the HTTP transport in the same process. moto keeps one state
per process, though: leaving a ``mock_aws`` block resets it, these stores included (the
next connection provisions the tables again, empty).

Example:
    >>> from streamlet import Admin, Producer                          # doctest: +SKIP
    >>> Admin("memory://").create_topic("orders", partitions=3)         # doctest: +SKIP
    >>> with Producer("memory://") as producer:                         # doctest: +SKIP
    ...     producer.send("orders", b"hello").result().offset
    0
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from ..engine import Engine, Names
from ..errors import InvalidRequest
from .credentials import LOCAL_CREDENTIALS, REGION

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

STORE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
"""Store names end up in a bucket name: lowercase letters, digits and inner hyphens."""

_setup_lock = threading.Lock()
_clients: tuple[DynamoDBClient, S3Client] | None = None


def memory_names(store: str) -> Names:
    """The table and bucket names of the store ``store`` ("" for the default store)."""
    if store and not STORE_NAME.fullmatch(store):
        raise InvalidRequest(
            f"memory://{store}: a store name is 1-40 lowercase letters, digits or inner "
            "hyphens.")
    prefix = f"memory-{store}" if store else "memory"
    return Names(prefix=prefix, bucket=f"{prefix}-data")


def connect_memory(store: str = "") -> Engine:
    """An engine on the in-process store ``store``, its tables provisioned if missing."""
    names = memory_names(store)
    dynamodb, s3 = _shared_clients()
    engine = _MemoryEngine(dynamodb, s3, names)
    engine.provision(s3)
    return engine


class _MemoryEngine(Engine):
    """An engine whose clients are shared by every ``memory://`` connection."""

    def close(self) -> None:
        """Nothing to release: no connection pool is ever used."""


def _shared_clients() -> tuple[DynamoDBClient, S3Client]:
    """One DynamoDB and one S3 client for the process (boto3 clients are thread-safe;
    building one costs tens of milliseconds)."""
    global _clients  # noqa: PLW0603 - one pair of clients per process, made on first use
    with _setup_lock:
        if _clients is None:
            _clients = _make_clients()
        return _clients


def _make_clients() -> tuple[DynamoDBClient, S3Client]:
    try:
        from moto.core.botocore_stubber import BotocoreStubber
    except ImportError as missing:
        raise InvalidRequest("memory:// runs on moto: install streamlet[local].") from missing
    import boto3

    from . import motofix
    from .serialize import _LOCK

    motofix.install()
    stubber = BotocoreStubber()
    stubber.enabled = True

    def answer(event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        with _LOCK:
            response = stubber(event_name, request, **kwargs)
        if response is None:  # never let a request through to AWS
            raise InvalidRequest(f"memory:// cannot serve {request.method} {request.url}.")
        return response

    key, secret = LOCAL_CREDENTIALS
    options: Any = {"region_name": REGION, "aws_access_key_id": key,
                    "aws_secret_access_key": secret}
    session = _moto_session() or boto3.Session()
    dynamodb, s3 = session.client("dynamodb", **options), session.client("s3", **options)
    for client in (dynamodb, s3):
        events: Any = client.meta.events  # the stubs type handlers as returning None
        events.register_first("before-send", answer, unique_id="streamlet-memory")
    return dynamodb, s3


def _moto_session() -> Any:
    """The boto3 session moto reads its region lists from: building our clients on it
    decodes the endpoint and service models once instead of twice (~0.1 s of a first
    connection). None if this moto version keeps no such session."""
    from moto.core import base_backend

    get_session = getattr(base_backend.AccountSpecificBackend, "get_session", None)
    return None if get_session is None else get_session()
