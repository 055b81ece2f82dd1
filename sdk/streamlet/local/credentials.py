"""The local platform's well-known credentials and region.

``streamlet local`` accepts these on its HTTP gateway (SigV4-checked) and prints them for
client shells; SDK transports fall back to them for loopback endpoints when no AWS
credentials are configured, so a laptop needs no AWS account.
"""

from __future__ import annotations

LOCAL_CREDENTIALS = ("streamlet-local", "streamlet-local")
"""(access key id, secret access key)."""
REGION = "us-east-1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
