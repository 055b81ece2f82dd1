"""The seam between the client API and a Streamlet deployment.

``Producer``, ``Consumer`` and ``Admin`` talk to a :class:`Transport`. The direct
transport runs the storage engine in-process over boto3; the HTTP transport
(:mod:`streamlet.http`) speaks to the deployed API behind the same protocol.

Endpoints (``endpoint=`` or ``STREAMLET_ENDPOINT``):

``direct://[PREFIX][?bucket=NAME&region=R]``
    DynamoDB and S3 on AWS, tables named ``PREFIX-*`` (default ``streamlet``).
``direct+http://HOST:PORT[/PREFIX]``
    The same against an AWS-compatible endpoint, e.g. ``streamlet local``.
``https://API[/STAGE]`` or ``http://127.0.0.1:PORT``
    The HTTP API (API Gateway, or the local gateway), every request SigV4-signed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .errors import InvalidRequest
from .leases import GroupSnapshot, Lease, Member
from .records import (
    AppendResult,
    ArchiveReport,
    FetchResult,
    RetentionReport,
    TopicDescription,
    TopicPartition,
)

ENDPOINT_ENV = "STREAMLET_ENDPOINT"
LOCAL_CREDENTIALS = ("streamlet-local", "streamlet-local")


class GroupOps(Protocol):
    """Consumer-group state: members, leases, commits (see ``streamlet.leases``)."""

    def snapshot(self, group: str) -> GroupSnapshot: ...

    def lease(self, group: str, tp: TopicPartition) -> Lease | None: ...

    def list_groups(self) -> list[str]: ...

    def heartbeat(self, group: str, member: Member) -> int: ...

    def remove_member(self, group: str, member_id: str, seen_beat: int | None = None
                      ) -> None: ...

    def ensure_leases(self, group: str, tps: Iterable[TopicPartition]) -> None: ...

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease
             ) -> Lease | None: ...

    def release(self, group: str, tp: TopicPartition, member_id: str, epoch: int) -> None: ...

    def commit(self, group: str, member_id: str,
               offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> None: ...

    def reset(self, group: str, offsets: Mapping[TopicPartition, int],
              seen: Mapping[TopicPartition, Lease]) -> None: ...

    def delete(self, group: str) -> None: ...


class Transport(Protocol):
    """Everything the client API needs from a deployment."""

    @property
    def groups(self) -> GroupOps: ...

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription: ...

    def list_topics(self) -> list[str]: ...

    def describe_topic(self, name: str) -> TopicDescription: ...

    def topic_metadata(self, name: str) -> TopicDescription: ...

    def delete_topic(self, name: str) -> None: ...

    def create_partitions(self, name: str, total: int) -> TopicDescription: ...

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None) -> AppendResult: ...

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = ...,
              max_records: int | None = None) -> FetchResult: ...

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None: ...

    def init_producer_id(self) -> int: ...

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int: ...

    def archive(self, topic: str | None = None, force: bool = False
                ) -> list[ArchiveReport]: ...

    def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]: ...


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
        return _direct(url.scheme, url.netloc, url.path.strip("/"), parse_qs(url.query))
    if url.scheme in ("http", "https"):
        from .http import HttpTransport

        return HttpTransport(url.geturl())
    raise InvalidRequest(
        f"Unsupported endpoint {url.geturl()!r}: expected direct://, direct+http:// "
        "or direct+https://.")


def _direct(scheme: str, netloc: str, path: str, query: dict[str, list[str]]) -> Transport:
    from botocore.config import Config

    from .engine import Engine, Names
    from .engine.aws import RETRIES

    endpoint_url = None if scheme == "direct" else f"{scheme.split('+')[1]}://{netloc}"
    prefix = (netloc if scheme == "direct" else path) or "streamlet"
    names = Names(prefix=prefix, bucket=query.get("bucket", [f"{prefix}-data"])[0])
    session = _session(endpoint_url, query.get("region", [None])[0])
    config = Config(retries=dict(RETRIES),  # type: ignore[arg-type]
                    connect_timeout=5, read_timeout=30)
    clients: dict[str, Any] = {
        service: session.client(service, endpoint_url=endpoint_url, config=config)
        for service in ("dynamodb", "s3")
    }
    return Engine(clients["dynamodb"], clients["s3"], names)


def _session(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 session; a local endpoint without credentials gets the local ones."""
    import boto3

    session = boto3.Session(region_name=region)
    region_name = session.region_name or "us-east-1"
    if endpoint_url and session.get_credentials() is None:
        key, secret = LOCAL_CREDENTIALS
        return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                             region_name=region_name)
    return boto3.Session(region_name=region_name) if not session.region_name else session
