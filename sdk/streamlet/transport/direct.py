"""The direct transport: the storage engine in-process, over the caller's boto3 clients.

For trusted services that may talk to DynamoDB and S3 themselves (no API Gateway or
Lambda on the path). The engine implements :class:`~streamlet.transport.base.Transport`.
:func:`direct_endpoint` writes the endpoint string :func:`connect_direct` reads (what a
deployment's ``GET /v1/deployment`` answers).
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import boto3
from botocore.config import Config

from ..engine import Engine, Names
from ..engine.aws import RETRIES
from ..local.credentials import LOCAL_CREDENTIALS


def connect_direct(scheme: str, netloc: str, path: str, query: dict[str, list[str]]
                   ) -> Engine:
    """An engine for ``direct://PREFIX?...`` (AWS) or ``direct+http(s)://HOST/PREFIX``."""
    endpoint_url = None if scheme == "direct" else f"{scheme.split('+')[1]}://{netloc}"
    prefix = (netloc if scheme == "direct" else path) or "streamlet"
    names = Names(prefix=prefix, bucket=query.get("bucket", [f"{prefix}-data"])[0])
    session = session_for(endpoint_url, query.get("region", [None])[0])
    config = Config(retries=dict(RETRIES),  # type: ignore[arg-type]
                    connect_timeout=5, read_timeout=30)
    return Engine(session.client("dynamodb", endpoint_url=endpoint_url, config=config),
                  session.client("s3", endpoint_url=endpoint_url, config=config), names)


def session_for(endpoint_url: str | None, region: str | None) -> boto3.Session:
    """A boto3 session; a non-AWS endpoint without credentials gets the local ones."""
    session = boto3.Session(region_name=region)
    region_name = session.region_name or "us-east-1"
    if endpoint_url and session.get_credentials() is None:
        key, secret = LOCAL_CREDENTIALS
        return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                             region_name=region_name)
    return boto3.Session(region_name=region_name) if not session.region_name else session


def direct_endpoint(names: Names, region: str, endpoint_url: str | None = None) -> str:
    """The endpoint that reaches ``names``' tables and bucket in ``region`` directly:
    ``direct://PREFIX?bucket=B&region=R`` on AWS, or ``direct+http://HOST:PORT/PREFIX?...``
    at an AWS-compatible ``endpoint_url`` (a local platform).

    Example:
        >>> direct_endpoint(Names("orders", "orders-data"), "eu-west-1")
        'direct://orders?bucket=orders-data&region=eu-west-1'
        >>> direct_endpoint(Names(), "us-east-1", "http://127.0.0.1:4566")
        'direct+http://127.0.0.1:4566/streamlet?bucket=streamlet-data&region=us-east-1'
    """
    query = urlencode({"bucket": names.bucket, "region": region})
    if endpoint_url is None:
        return f"direct://{names.prefix}?{query}"
    url = urlsplit(endpoint_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError(f"Not an http(s) endpoint URL: {endpoint_url!r}.")
    return f"direct+{url.scheme}://{url.netloc}/{names.prefix}?{query}"
