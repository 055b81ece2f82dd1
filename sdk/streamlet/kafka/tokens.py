"""SASL/OAUTHBEARER tokens for Streamlet's Kafka gateway, from your AWS credentials.

A token is a SigV4-*presigned* ``sts:GetCallerIdentity`` request (base64url), signed with
the normal AWS credential chain and an ``x-streamlet-audience`` header naming the gateway
(so the token is good for that gateway only). The gateway executes it against STS to learn
who you are; it never sees your secret key. Tokens last 15 minutes and are renewed a
minute before they expire.

For each client:

- kafka-python: ``KafkaProducer(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
  sasl_oauth_token_provider=KafkaPythonTokenProvider())``
- aiokafka: ``AIOKafkaProducer(..., sasl_oauth_token_provider=AIOKafkaTokenProvider())``
- confluent-kafka: ``Producer({"security.protocol": "SASL_SSL", "sasl.mechanisms":
  "OAUTHBEARER", "oauth_cb": oauth_cb()})``

Example:
    >>> token, expires_at = presigned_token(region="eu-west-1")     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

from .auth import AUDIENCE_HEADER, DEFAULT_AUDIENCE, MAX_TOKEN_AGE_S

__all__ = ["AIOKafkaTokenProvider", "KafkaPythonTokenProvider", "StsTokens", "oauth_cb",
           "presigned_token"]

RENEW_BEFORE_S = 60.0


def presigned_token(*, session: Any = None, region: str | None = None,
                    endpoint_url: str | None = None, audience: str = DEFAULT_AUDIENCE,
                    expires_in: int = MAX_TOKEN_AGE_S) -> tuple[str, float]:
    """(token, expiry as epoch seconds): a presigned GetCallerIdentity for ``audience``.

    ``session``: a boto3 Session (default: the normal credential chain); ``endpoint_url``:
    another STS endpoint (the local platform's).
    """
    import boto3

    session = session or boto3.Session()
    client = session.client("sts", region_name=region or session.region_name or "us-east-1",
                            endpoint_url=endpoint_url)

    def bind_audience(request: Any, **_: Any) -> None:
        request.headers[AUDIENCE_HEADER] = audience

    client.meta.events.register("before-sign.sts.GetCallerIdentity", bind_audience)
    url = client.generate_presigned_url("get_caller_identity", Params={},
                                        ExpiresIn=expires_in, HttpMethod="GET")
    token = base64.urlsafe_b64encode(url.encode("ascii")).decode("ascii").rstrip("=")
    return token, time.time() + expires_in


class StsTokens:
    """A cached token, renewed :data:`RENEW_BEFORE_S` before it expires (thread-safe)."""

    def __init__(self, **presign: Any) -> None:
        self._presign = presign
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None

    def get(self) -> tuple[str, float]:
        with self._lock:
            if self._current is None or self._current[1] - RENEW_BEFORE_S <= time.time():
                self._current = presigned_token(**self._presign)
            return self._current


def _kafka_python_base() -> type:
    from kafka.net.sasl.oauth import AbstractTokenProvider

    return AbstractTokenProvider  # type: ignore[no-any-return]


def _aiokafka_base() -> type:
    from aiokafka.abc import AbstractTokenProvider

    return AbstractTokenProvider  # type: ignore[no-any-return]


def KafkaPythonTokenProvider(**presign: Any) -> Any:
    """kafka-python's ``sasl_oauth_token_provider`` (``presign``: see
    :func:`presigned_token`)."""
    tokens = StsTokens(**presign)

    class Provider(_kafka_python_base()):  # type: ignore[misc]
        def token(self) -> str:
            return tokens.get()[0]

    return Provider()


def AIOKafkaTokenProvider(**presign: Any) -> Any:
    """aiokafka's ``sasl_oauth_token_provider`` (presigning runs in a thread)."""
    import asyncio

    tokens = StsTokens(**presign)

    class Provider(_aiokafka_base()):  # type: ignore[misc]
        async def token(self) -> str:
            return (await asyncio.to_thread(tokens.get))[0]

    return Provider()


def oauth_cb(**presign: Any) -> Callable[[str], tuple[str, float]]:
    """confluent-kafka's ``oauth_cb``: ``config -> (token, expiry epoch seconds)``."""
    tokens = StsTokens(**presign)

    def callback(_config: str) -> tuple[str, float]:
        return tokens.get()

    return callback
