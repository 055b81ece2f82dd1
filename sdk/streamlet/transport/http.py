"""The HTTP transport: Producer, Consumer and Admin over Streamlet's HTTP API.

Administration speaks Confluent REST Proxy v3 JSON; appends, fetches, offsets and
producer ids use the native ``/v1`` routes, which carry whole RecordBatch v2 blobs so
nothing is re-encoded on the way; consumer groups use the native ``/v1/groups`` routes
(:mod:`streamlet.transport.http_groups`). Every request is signed with SigV4 for the
``execute-api`` service from the normal AWS credential chain (API Gateway's IAM
authorization); the local gateway checks the same signature.

Error bodies (``{"error_code", "message", "code"}``) become the same StreamletError
classes the direct transport raises; throttling, 5xx and connection failures become the
retriable ones, so the producer's retry loop rides them out.

Example:
    >>> t = HttpTransport("https://abc123.execute-api.eu-west-1.amazonaws.com")  # doctest: +SKIP
    >>> t.list_topics()                                                          # doctest: +SKIP
    ['orders']
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .. import wire
from .._values import is_int
from ..codec import LOG_OVERHEAD
from ..errors import (
    AccessDenied,
    InvalidConfig,
    InvalidRecord,
    RequestTimedOut,
    StreamletError,
)
from ..local.credentials import LOCAL_CREDENTIALS, LOOPBACK_HOSTS
from ..local.credentials import REGION as LOCAL_REGION
from ..records import (
    DEFAULT_FETCH_BYTES,
    AppendResult,
    ArchiveReport,
    FetchResult,
    PartitionInfo,
    ProducerIdentity,
    RetentionReport,
    TopicDescription,
    TransactionInfo,
    TxnOffsets,
)
from ..topicconfig import validate_config, validate_partitions, validate_topic_name
from ..txn import validate_transactional_id
from .http_groups import HttpGroups

__all__ = ["HttpTransport", "error_from_reply", "split_batches"]

SERVICE = "execute-api"
_REGION_IN_HOST = re.compile(r"\.execute-api(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class _NoReply(RequestTimedOut):
    """No answer came back at all: the request may still be running in the API."""


_NOT_CONNECTED = (urllib3.exceptions.NewConnectionError,
                  urllib3.exceptions.ConnectTimeoutError)


def error_from_reply(status: int, data: bytes) -> StreamletError:
    """The StreamletError an error response stands for (see ``StreamletError.from_wire``)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    return StreamletError.from_wire(status, body if isinstance(body, dict) else {})


def split_batches(data: bytes) -> list[bytes]:
    """Cut back-to-back RecordBatch v2 blobs apart by their length fields."""
    batches, pos = [], 0
    while pos < len(data):
        if len(data) - pos < LOG_OVERHEAD:
            raise InvalidRecord("The fetch response ends inside a batch header.")
        (length,) = struct.unpack_from(">i", data, pos + 8)
        end = pos + LOG_OVERHEAD + length
        if length <= 0 or end > len(data):
            raise InvalidRecord("The fetch response ends inside a batch.")
        batches.append(data[pos:end])
        pos = end
    return batches


def _json_config(config: Mapping[str, object] | None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for key, value in (config or {}).items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidConfig(f"Config {key} must be a string or an integer.")
        out.append({"name": str(key), "value": value})
    return out


class HttpTransport:
    """A :class:`~streamlet.transport.Transport` over the HTTP API, SigV4-signed.

    ``session`` is a boto3 session (default: a new one) for credentials and region; the
    region of an ``execute-api`` URL wins over the session's.
    """

    def __init__(self, base_url: str, session: Any = None, *, region: str | None = None,
                 timeout: float = 35.0, cluster_id: str = wire.CLUSTER_ID) -> None:
        if session is None:
            import boto3

            session = boto3.Session()
        parts = urlsplit(base_url)
        self._base = base_url.rstrip("/")
        self._host = (parts.hostname or "").lower()
        self._session = session
        self._region = region or self._region_for(session)
        self._cluster = cluster_id
        self._pool = urllib3.PoolManager(maxsize=16, retries=False,
                                         timeout=urllib3.Timeout(connect=5.0, read=timeout))
        self._groups = HttpGroups(self._request)
        self._sleep: Callable[[float], None] = lambda s: time.sleep(max(0.0, s))

    def _region_for(self, session: Any) -> str:
        found = _REGION_IN_HOST.search(self._host)
        if found:
            return found.group(1)
        if self._host in LOOPBACK_HOSTS:
            return LOCAL_REGION  # the local gateway's region, whatever the profile says
        return str(getattr(session, "region_name", None) or "us-east-1")

    @property
    def groups(self) -> HttpGroups:
        """Consumer-group state over the native ``/v1/groups`` routes."""
        return self._groups

    def close(self) -> None:
        """Close the connection pool (idempotent; a later request opens a new one)."""
        self._pool.clear()

    # ---- wire -------------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        found = self._session.get_credentials()
        if found is not None:
            frozen = found.get_frozen_credentials()
            return Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        if self._host in LOOPBACK_HOSTS:
            return Credentials(*LOCAL_CREDENTIALS)
        raise AccessDenied("No AWS credentials found to sign the request (environment, "
                           "profile or instance role).")

    def _request(self, method: str, path: str, *, query: Mapping[str, object] | None = None,
                 json_body: object = None, body: bytes | None = None) -> _Reply:
        """Sign and send one request; an error status raises its StreamletError."""
        reply = self._exchange(method, path, query=query, json_body=json_body, body=body)
        if reply.status >= 400:
            raise error_from_reply(reply.status, reply.data)
        return reply

    def _exchange(self, method: str, path: str, *, query: Mapping[str, object] | None = None,
                  json_body: object = None, body: bytes | None = None) -> _Reply:
        """Sign and send one request; its reply, whatever the status."""
        url = self._url(path, query)
        headers = {"Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        signed = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self._credentials(), SERVICE, self._region).add_auth(signed)
        return self._send(method, url, body, dict(signed.headers.items()))

    def _url(self, path: str, query: Mapping[str, object] | None) -> str:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        return self._base + path + ("?" + urlencode(params, quote_via=quote) if params else "")

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]
              ) -> _Reply:
        try:
            response = self._pool.request(method, url, body=body, headers=headers,
                                          redirect=False, preload_content=True)
        except _NOT_CONNECTED as e:  # nothing was sent
            raise RequestTimedOut(f"{method} {urlsplit(url).path}: no answer from the API "
                                  f"({type(e).__name__}); nothing was sent.") from e
        except urllib3.exceptions.HTTPError as e:
            raise _NoReply(f"{method} {urlsplit(url).path}: no answer from the API "
                           f"({type(e).__name__}); it may have been applied.") from e
        return _Reply(response.status, dict(response.headers.items()), response.data)

    def _topic_path(self, topic: str, suffix: str = "") -> str:
        validate_topic_name(topic)
        return f"/v3/clusters/{self._cluster}/topics/{quote(topic, safe='')}{suffix}"

    def _native(self, topic: str, partition: int, suffix: str) -> str:
        validate_topic_name(topic)
        return f"/v1/topics/{quote(topic, safe='')}/partitions/{int(partition)}/{suffix}"

    # ---- administration (REST Proxy v3) -----------------------------------------------

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        """``POST /v3/clusters/{c}/topics``, then its configs."""
        validate_topic_name(name)
        validate_partitions(name, partitions)
        body = {"topic_name": name, "partitions_count": partitions,
                "configs": _json_config(config)}
        created = self._request("POST", f"/v3/clusters/{self._cluster}/topics",
                                json_body=body).json()
        return self._description(created, [])

    def list_topics(self) -> list[str]:
        """``GET /v3/clusters/{c}/topics``: the names, sorted."""
        listing = self._request("GET", f"/v3/clusters/{self._cluster}/topics").json()
        return sorted(str(t["topic_name"]) for t in listing["data"])

    def describe_topic(self, name: str) -> TopicDescription:
        """The topic, its configs and each partition's watermarks (three v3 GETs)."""
        parts = self._request("GET", self._topic_path(name, "/partitions")).json()["data"]
        info = [PartitionInfo(int(p["partition_id"]), int(p["log_start_offset"]),
                              int(p["high_watermark"])) for p in parts]
        return self._description(self._request("GET", self._topic_path(name)).json(), info)

    def _description(self, topic: Mapping[str, Any], info: list[PartitionInfo]
                     ) -> TopicDescription:
        name = str(topic["topic_name"])
        configs = self._request("GET", self._topic_path(name, "/configs")).json()["data"]
        return TopicDescription(name, str(topic["topic_id"]), int(topic["partitions_count"]),
                                {str(c["name"]): str(c["value"]) for c in configs}, info,
                                frozenset(str(c["name"]) for c in configs
                                          if c.get("source") == "DYNAMIC_TOPIC_CONFIG"))

    def topic_metadata(self, name: str) -> TopicDescription:
        """``GET /v1/topics/{topic}``: partitions and config, no watermarks."""
        meta = self._request("GET", f"/v1/topics/{quote(validate_topic_name(name), safe='')}"
                             ).json()
        return wire.topic_from_json(meta)

    def delete_topic(self, name: str) -> None:
        """``DELETE /v3/clusters/{c}/topics/{topic}``."""
        self._request("DELETE", self._topic_path(name))

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """``PATCH /v3/clusters/{c}/topics/{topic}`` with ``partitions_count``."""
        if not is_int(total):
            validate_partitions(name, total)
        topic = self._request("PATCH", self._topic_path(name),
                              json_body={"partitions_count": total}).json()
        return self._description(topic, [])

    def alter_topic_config(self, name: str, updates: Mapping[str, object] | None = None,
                           deletes: Iterable[str] = (), validate_only: bool = False
                           ) -> TopicDescription:
        """``POST /v3/clusters/{c}/topics/{topic}/configs:alter`` (SET and DELETE entries,
        applied all or nothing), then the topic as it now is."""
        data = [{**entry, "operation": "SET"} for entry in _json_config(updates)]
        data += [{"name": str(key), "operation": "DELETE"} for key in deletes]
        self._request("POST", self._topic_path(name, "/configs:alter"),
                      json_body={"data": data, "validate_only": validate_only})
        current = self._description(self._request("GET", self._topic_path(name)).json(), [])
        if not validate_only:
            return current
        overrides: dict[str, object] = {k: current.config[k] for k in current.overrides}
        for key in deletes:
            overrides.pop(key, None)
        overrides.update(updates or {})
        return TopicDescription(current.name, current.topic_id, current.partitions,
                                validate_config(overrides), [], frozenset(overrides))

    # ---- the log (native /v1) ---------------------------------------------------------

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None, since_ms: int | None = None,
               transaction: tuple[str, int] | None = None) -> AppendResult:
        """``POST /v1/.../batches``: one RecordBatch v2 as the body.

        Without any reply (a dropped connection, a read timeout) the attempt may still be
        running in the API: the error is raised only once its deadline has passed
        (``wire.APPEND_RETRY_AFTER_MS`` after sending), so a retry never overlaps it.
        """
        tid, number = transaction if transaction is not None else (None, None)
        sent = time.monotonic()
        try:
            out = self._request("POST", self._native(topic, partition, "batches"),
                                body=batch, query={"expected_offset": expected_offset,
                                                   "since_ms": since_ms,
                                                   "transactional_id": tid,
                                                   "transaction": number}).json()
        except _NoReply:
            self._sleep(sent + wire.APPEND_RETRY_AFTER_MS / 1000 - time.monotonic())
            raise
        return wire.append_from_json(out)

    def fetch(self, topic: str, partition: int, offset: int,
              max_bytes: int = DEFAULT_FETCH_BYTES, max_records: int | None = None,
              boundary_of: str | None = None, isolation_level: str = "read_committed"
              ) -> FetchResult:
        """``GET /v1/.../batches``: batches back to back, watermarks in headers."""
        reply = self._request("GET", self._native(topic, partition, "batches"), query={
            "offset": offset, "max_bytes": max_bytes, "max_records": max_records,
            "boundary_of": boundary_of,
            "isolation_level": None if isolation_level == "read_committed" else isolation_level})
        headers = {k.lower(): v for k, v in reply.headers.items()}
        return FetchResult(split_batches(reply.data),
                           int(headers[wire.HIGH_WATERMARK_HEADER.lower()]),
                           int(headers[wire.LOG_START_HEADER.lower()]),
                           headers.get(wire.TOPIC_ID_HEADER.lower(), ""))

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """``GET /v1/.../offsets``: (log start offset, high watermark)."""
        out = self._request("GET", self._native(topic, partition, "offsets")).json()
        return wire.watermarks_from_json(out)

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """``GET /v1/.../offsets?timestamp=MS``."""
        out = self._request("GET", self._native(topic, partition, "offsets"),
                            query={"timestamp": timestamp}).json()
        return wire.offset_from_json(out)

    def init_producer_id(self) -> int:
        """``POST /v1/producer-ids``."""
        return int(self._request("POST", "/v1/producer-ids").json()["producer_id"])

    # ---- transactions (native /v1) ----------------------------------------------------

    def init_transactions(self, transactional_id: str, timeout_ms: int = 60_000
                          ) -> ProducerIdentity:
        """``POST /v1/transactions/{id}/init``."""
        out = self._request("POST", _txn_path(transactional_id, "init"),
                            json_body={"timeout_ms": timeout_ms}).json()
        return wire.identity_from_json(out)

    def begin_transaction(self, who: ProducerIdentity) -> int:
        """``POST /v1/transactions/{id}/begin``: the transaction's number."""
        out = self._request("POST", _txn_path(who.transactional_id, "begin"),
                            json_body=_producer(who)).json()
        return int(out["number"])

    def commit_transaction(self, who: ProducerIdentity, number: int,
                           batches: Mapping[tuple[str, int], Sequence[int]],
                           offsets: TxnOffsets | None = None) -> TransactionInfo:
        """``POST /v1/transactions/{id}/{number}/commit``: safe to repeat."""
        body = {**_producer(who), "batches": wire.batches_json(batches),
                "offsets": None if offsets is None else wire.txn_offsets_json(offsets)}
        out = self._request("POST", _txn_path(who.transactional_id, f"{int(number)}/commit"),
                            json_body=body).json()
        return wire.transaction_from_json(out)

    def abort_transaction(self, who: ProducerIdentity, number: int) -> TransactionInfo:
        """``POST /v1/transactions/{id}/{number}/abort``."""
        out = self._request("POST", _txn_path(who.transactional_id, f"{int(number)}/abort"),
                            json_body=_producer(who)).json()
        return wire.transaction_from_json(out)

    def list_transactions(self, include_ended: bool = False) -> list[TransactionInfo]:
        """``GET /v1/transactions`` (an administrator's route)."""
        out = self._request("GET", "/v1/transactions",
                            query={"include_ended": "true" if include_ended else None}).json()
        return [wire.transaction_from_json(t) for t in out["data"]]

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords through the archiver function."""
        out = self._request("POST", self._native(topic, partition, "delete-records"),
                            json_body={"before_offset": before_offset}).json()
        return int(out["low_watermark"])

    def archive(self, topic: str | None = None, force: bool = False) -> list[ArchiveReport]:
        out = self._request("POST", "/v1/archive",
                            json_body={"topic": topic, "force": force}).json()
        return wire.archive_reports_from_json(out)

    def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]:
        out = self._request("POST", "/v1/retention", json_body={"topic": topic}).json()
        return wire.retention_reports_from_json(out)

    # ---- the deployment ---------------------------------------------------------------

    def direct_endpoint(self) -> str | None:
        """``GET /v1/deployment``: the endpoint that reaches this deployment's tables and
        bucket directly (``direct://PREFIX?bucket=B&region=R``; a local platform answers
        ``direct+http://...``), for programs that serve the engine itself with their own
        AWS credentials (``streamlet gateway``). An administrator's route.

        None if the API has no such route (404: a deployment older than the route, or
        not a Streamlet API); AccessDenied without ``grant_admin``.

        Example:
            >>> HttpTransport("https://abc123.execute-api.eu-west-1.amazonaws.com"
            ...               ).direct_endpoint()                      # doctest: +SKIP
            'direct://streamlet?bucket=streamlet-data&region=eu-west-1'
        """
        reply = self._exchange("GET", "/v1/deployment")
        if reply.status == 404:
            return None
        if reply.status >= 400:
            raise error_from_reply(reply.status, reply.data)
        try:
            found = reply.json()["direct_endpoint"]
        except (ValueError, KeyError, TypeError):
            found = None
        if not isinstance(found, str) or not found.startswith("direct"):
            raise StreamletError("GET /v1/deployment answered no direct endpoint: "
                                 f"{reply.data[:200]!r}.")
        return found


def _txn_path(transactional_id: str, suffix: str) -> str:
    return f"/v1/transactions/{quote(validate_transactional_id(transactional_id), safe='')}/" \
           f"{suffix}"


def _producer(who: ProducerIdentity) -> dict[str, int]:
    return {"producer_id": who.producer_id, "epoch": who.epoch}
