"""Transports: how Producer, Consumer and Admin reach a deployment.

- :mod:`.base`: the :class:`Transport` protocol (and :class:`GroupOps`), documented;
- :mod:`.endpoint`: ``connect(endpoint)`` picks one from an endpoint string;
- :mod:`.direct`: the storage engine in-process over boto3;
- :mod:`.http` and :mod:`.http_groups`: the HTTP API, SigV4-signed.
"""

from .base import GroupOps, Transport
from .endpoint import ENDPOINT_ENV, connect, resolve_endpoint

__all__ = ["ENDPOINT_ENV", "GroupOps", "Transport", "connect", "resolve_endpoint"]
