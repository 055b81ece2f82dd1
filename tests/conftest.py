"""Shared fixtures: AWS credentials for moto, an in-process engine, a local platform."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from streamlet.engine import Engine
from streamlet.local import LocalPlatform, serialized_moto

_names = itertools.count()

WORKERS = 2
"""CI's machine has two cores: the suite runs on two pytest-xdist workers by default."""
DIST = "loadfile"
"""Each test file runs whole on one worker (module fixtures and caches are built once)."""


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[object]:
    """Default to ``-n 2 --dist loadfile`` when pytest-xdist is loaded.

    Not in ``addopts``: there ``-p no:xdist`` would fail on the unknown ``-n``. An explicit
    ``-n`` (``-n 0``: serial) wins; so does ``-p no:xdist``. ``-s`` (output shown live,
    e.g. to watch a chaos run) and ``--pdb``/``--trace`` run serially, since workers cannot
    show output or stop in a debugger.
    """
    option = config.option
    if (config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
            and getattr(option, "numprocesses", 0) is None
            and option.capture != "no" and not option.usepdb and not option.trace):
        option.numprocesses = WORKERS
        if option.dist == "no" and not option.distload:
            option.dist = DIST
    return (yield)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and no endpoint leaking in from the developer's shell."""
    for key in ("AWS_ENDPOINT_URL", "STREAMLET_ENDPOINT", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def engine() -> Iterator[Engine]:
    """An engine on in-process moto (fresh state, requests serialized)."""
    with mock_aws(), serialized_moto():
        s3 = boto3.client("s3", region_name="us-east-1")
        eng = Engine(boto3.client("dynamodb", region_name="us-east-1"), s3)
        eng.provision(s3)
        yield eng


@pytest.fixture(scope="session")
def platform() -> Iterator[LocalPlatform]:
    """One local platform (moto server on 127.0.0.1, serialized) for the session."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with LocalPlatform() as lp:
        yield lp
    for key, value in saved.items():
        if value is not None:
            os.environ[key] = value


@pytest.fixture
def live_platform(platform: LocalPlatform) -> LocalPlatform:
    """The session's platform with its storage present.

    moto keeps one set of backends per process: leaving an in-process ``mock_aws``
    resets them, tables of the running server included. Re-provisioning is cheap.
    """
    platform.engine().provision(platform.client("s3"))
    return platform


@pytest.fixture
def endpoint(live_platform: LocalPlatform) -> str:
    return live_platform.endpoint


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses (the local platform is shared)."""
    return f"t-{os.getpid()}-{next(_names)}"
