"""pytest fixtures for applications that use Streamlet (loaded by the ``pytest11`` entry
point of the ``streamlet`` package: installing it is enough).

Fixtures, all named ``streamlet_*`` so they meet nobody else's:

``streamlet_endpoint`` (session)
    The endpoint to give clients. By default ``memory://pytest``: the engine over
    in-process moto, no server and no port (the first test starts in well under a
    second). ``--streamlet-backend=local`` runs a local platform (moto server on
    127.0.0.1) and connects directly, ``--streamlet-backend=http`` goes through its HTTP
    gateway (SigV4 checked, the Lambda handlers in-process); ``--streamlet-endpoint=URL``
    or ``$STREAMLET_TEST_ENDPOINT`` runs the same tests against a deployment.
``streamlet_platform`` (session)
    A started :class:`~streamlet.local.LocalPlatform`, stopped after the session.
``streamlet_admin`` (session)
    An :class:`~streamlet.Admin` on ``streamlet_endpoint``.
``streamlet_topic_factory``
    ``make(partitions=1, config=None, *, name=None) -> str`` creates a topic with a
    name no other test uses; every topic it made is deleted after the test.
``streamlet_topic``
    A fresh one-partition topic's name.

Example:
    >>> def test_orders_round_trip(streamlet_endpoint, streamlet_topic_factory):  # doctest: +SKIP
    ...     topic = streamlet_topic_factory(partitions=3)
    ...     with Producer(streamlet_endpoint) as producer:
    ...         producer.send(topic, b"order-1", key=b"alice").result(timeout=10)

Importing this module imports nothing beyond pytest and ``streamlet`` itself: moto and
boto3 load only when a fixture needs them, and nothing happens in a session that uses
no fixture.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from .admin import Admin
    from .local import LocalPlatform

BACKENDS = ("memory", "local", "http")
ENDPOINT_ENV = "STREAMLET_TEST_ENDPOINT"
MEMORY_STORE = "pytest"


class TopicFactory(Protocol):
    """What ``streamlet_topic_factory`` gives a test."""

    def __call__(self, partitions: int = 1, config: Mapping[str, object] | None = None, *,
                 name: str | None = None) -> str: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamlet", "Streamlet fixtures (streamlet_*)")
    group.addoption("--streamlet-backend", choices=BACKENDS, default=None,
                    help="where streamlet_endpoint points: memory (in-process, the default),"
                         " local (a local platform, direct) or http (its HTTP gateway)")
    group.addoption("--streamlet-endpoint", default=None, metavar="URL",
                    help=f"use this endpoint instead (e.g. a deployment; also ${ENDPOINT_ENV})")
    parser.addini("streamlet_backend", default="memory",
                  help="the default of --streamlet-backend")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a misspelt backend at once (reads the options, nothing more)."""
    _backend(config)


@pytest.fixture(scope="session")
def streamlet_platform() -> Iterator[LocalPlatform]:
    """A local platform (moto server on 127.0.0.1, an ephemeral port) for the session."""
    from .local import LocalPlatform

    saved = {key: os.environ.get(key) for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        with LocalPlatform() as platform:
            yield platform
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def streamlet_endpoint(request: pytest.FixtureRequest) -> str:
    """Where the tests' clients connect (see the module docstring)."""
    given = _given_endpoint(request.config)
    if given:
        return given
    backend = _backend(request.config)
    if backend == "memory":
        return f"memory://{MEMORY_STORE}"
    platform: LocalPlatform = request.getfixturevalue("streamlet_platform")
    if backend == "local":
        return platform.endpoint
    return platform.start_gateway(credentials=_gateway_credentials())


@pytest.fixture(scope="session")
def streamlet_admin(streamlet_endpoint: str) -> Iterator[Admin]:
    """An Admin client on ``streamlet_endpoint`` for the session."""
    from .admin import Admin

    with Admin(streamlet_endpoint) as admin:
        yield admin


@pytest.fixture(scope="session")
def _streamlet_storage(request: pytest.FixtureRequest, streamlet_endpoint: str
                       ) -> Callable[[], None]:
    """Re-creates the tables of an in-process store if moto was reset meanwhile (leaving
    a ``mock_aws`` block resets all of moto's state in the process, servers included)."""
    if streamlet_endpoint.startswith("memory://"):
        from .local.memory import connect_memory

        store = streamlet_endpoint.removeprefix("memory://")
        return lambda: connect_memory(store).close()
    if _given_endpoint(request.config):
        return lambda: None
    platform: LocalPlatform = request.getfixturevalue("streamlet_platform")
    engine, s3 = platform.engine(), platform.client("s3")
    return lambda: engine.provision(s3)


@pytest.fixture
def streamlet_topic_factory(request: pytest.FixtureRequest, streamlet_admin: Admin,
                            _streamlet_storage: Callable[[], None]) -> Iterator[TopicFactory]:
    """Creates topics no other test uses; deletes them after the test."""
    made: list[str] = []

    def make(partitions: int = 1, config: Mapping[str, object] | None = None, *,
             name: str | None = None) -> str:
        _streamlet_storage()
        topic = name or unique_topic_name(request.node.name)
        streamlet_admin.create_topic(topic, partitions, config)
        made.append(topic)
        return topic

    yield make
    from .errors import StreamletError

    for topic in made:
        with contextlib.suppress(StreamletError):
            streamlet_admin.delete_topic(topic)


@pytest.fixture
def streamlet_topic(streamlet_topic_factory: TopicFactory) -> str:
    """A fresh one-partition topic (deleted after the test)."""
    return streamlet_topic_factory()


def unique_topic_name(test_name: str) -> str:
    """A valid topic name derived from ``test_name``, unique across runs and processes.

    Example:
        >>> unique_topic_name("test_orders[http]")[:-9]
        'test_orders-http'
    """
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", test_name).strip("-.")[:60] or "test"
    return f"{slug}-{uuid.uuid4().hex[:8]}"


def _given_endpoint(config: pytest.Config) -> str | None:
    given = config.getoption("--streamlet-endpoint") or os.environ.get(ENDPOINT_ENV)
    return str(given) if given else None


def _backend(config: pytest.Config) -> str:
    chosen = config.getoption("--streamlet-backend") or config.getini("streamlet_backend")
    backend = str(chosen or "memory")
    if backend not in BACKENDS:
        raise pytest.UsageError(f"streamlet_backend = {backend!r}: expected one of "
                                f"{', '.join(BACKENDS)}.")
    return backend


def _gateway_credentials() -> dict[str, str]:
    """What the HTTP gateway accepts: the local pair, and the keys this process's
    credential chain signs with (so the tests need no particular AWS setup)."""
    import boto3

    from .local.credentials import LOCAL_CREDENTIALS

    key, secret = LOCAL_CREDENTIALS
    accepted = {key: secret}
    found = boto3.Session().get_credentials()
    frozen = found.get_frozen_credentials() if found is not None else None
    if frozen is not None and frozen.access_key and frozen.secret_key:
        accepted[frozen.access_key] = frozen.secret_key
    return accepted
