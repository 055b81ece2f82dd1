"""Every SDK test that takes ``endpoint`` runs twice: direct, and over HTTP.

The HTTP run goes through the local gateway (the Lambda handlers in-process, SigV4
enforced). The SDK signs with the normal credential chain, so the HTTP run points that
chain at the local credentials the gateway accepts.
"""

from __future__ import annotations

import pytest

from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS


@pytest.fixture(scope="session")
def gateway_url(platform: LocalPlatform) -> str:
    """The session platform's HTTP gateway (started once)."""
    return platform.start_gateway()


@pytest.fixture(params=["direct", "http"])
def endpoint(request: pytest.FixtureRequest, live_platform: LocalPlatform,
             monkeypatch: pytest.MonkeyPatch) -> str:
    """``direct+http://...`` (the engine in-process) or ``http://...`` (the HTTP API)."""
    if request.param == "direct":
        return live_platform.endpoint
    key, secret = LOCAL_CREDENTIALS
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    url: str = request.getfixturevalue("gateway_url")
    return url
