"""Small helpers about the request's URL: the API's base URL and decoded path segments."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote


def unquoted(segment: str) -> str:
    """A path parameter as the client meant it (Powertools matches the raw, encoded path)."""
    return unquote(segment)


def base_url(event: Any) -> str:
    """``https://{domain}[/{stage}]``, as the client reached this API (for ``metadata.self``)."""
    headers = event.get("headers") or {}
    context = event.get("requestContext") or {}
    host = headers.get("host") or context.get("domainName") or "localhost"
    scheme = str(headers.get("x-forwarded-proto", "https")).split(",")[0].strip()
    stage = context.get("stage") or "$default"
    prefix = "" if stage == "$default" else f"/{stage}"
    return f"{scheme}://{host}{prefix}"
