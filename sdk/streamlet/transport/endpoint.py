"""Which transport an endpoint string means (``endpoint=`` or ``$STREAMLET_ENDPOINT``).

``direct://[PREFIX][?bucket=NAME&region=R]``
    DynamoDB and S3 on AWS, tables named ``PREFIX-*`` (default ``streamlet``).
``direct+http://HOST:PORT[/PREFIX]``
    The same against an AWS-compatible endpoint, e.g. ``streamlet local``.
``https://API[/STAGE]`` or ``http://127.0.0.1:PORT``
    The HTTP API (API Gateway, or the local gateway), every request SigV4-signed.
``memory://[NAME]``
    The engine over in-process moto: no server, no port (tests; needs ``streamlet[local]``).
    Clients in one process that name the same store share it
    (:mod:`streamlet.local.memory`).

Example:
    >>> resolve_endpoint("direct+http://127.0.0.1:4566")
    'direct+http://127.0.0.1:4566'
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from ..errors import InvalidRequest
from .base import Transport

ENDPOINT_ENV = "STREAMLET_ENDPOINT"


def resolve_endpoint(endpoint: str | None) -> str:
    """The endpoint argument, else ``$STREAMLET_ENDPOINT``; raises if neither is set."""
    value = endpoint or os.environ.get(ENDPOINT_ENV)
    if not value:
        raise InvalidRequest(
            f"No Streamlet endpoint: pass endpoint=... or set {ENDPOINT_ENV} "
            "(`streamlet local` prints one for a local platform).")
    return value


def connect(endpoint: str | None = None) -> Transport:
    """A transport for ``endpoint`` (see the module docstring for the forms)."""
    url = urlsplit(resolve_endpoint(endpoint))
    if url.scheme in ("direct", "direct+http", "direct+https"):
        from .direct import connect_direct

        return connect_direct(url.scheme, url.netloc, url.path.strip("/"),
                              parse_qs(url.query))
    if url.scheme in ("http", "https"):
        from .http import HttpTransport

        return HttpTransport(url.geturl())
    if url.scheme == "memory":
        if url.path.strip("/") or url.query:
            raise InvalidRequest(f"Unsupported endpoint {url.geturl()!r}: expected "
                                 "memory:// or memory://NAME.")
        from ..local.memory import connect_memory

        return connect_memory(url.netloc)
    raise InvalidRequest(
        f"Unsupported endpoint {url.geturl()!r}: expected direct://, direct+http://, "
        "direct+https://, http://, https:// or memory://.")
