"""Grants, written once: what ``grant_produce`` / ``grant_consume`` / ``grant_admin`` allow.

A :class:`Grant` is a role (produce, consume, admin) with a topic and a second name
pattern: the consumer groups of a consume grant, the transactional ids of a produce grant.
It has two IAM forms, both built here from the schema's key layout:

- **HTTP API** (:func:`http_routes`, :func:`http_policy`): ``execute-api:Invoke`` on route
  ARNs. API Gateway checks the path; the handlers check every topic a request *body* names
  against the same policy, as the route that reads it (:func:`read_route`).
- **Direct mode** (:func:`direct_statements`, :func:`direct_policy`): DynamoDB actions on the
  three tables, scoped by ``dynamodb:LeadingKeys`` (keys start with the topic or group name,
  see :mod:`.schema`) with a ``Null`` condition so requests without leading keys (Scan) are
  not allowed by them, and S3 actions on the topic's ``blobs/`` and ``segments/`` prefixes.

The CDK construct (``infra/platform.py``) turns these into role policies; the handlers
and the tests evaluate them with :mod:`streamlet.policy`.

Example:
    >>> grant = Grant.consume("orders.", group_prefix="billing")
    >>> http_routes(grant)[0]
    ('GET', '/v1/topics/orders.*/partitions/*/batches')
    >>> Grant.decode(grant.encode()) == grant
    True
    >>> read_route("orders.eu", 3)
    ('GET', '/v1/topics/orders.eu/partitions/3/batches')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import schema

__all__ = ["ROLES", "Grant", "Resources", "direct_policy", "direct_statements",
           "group_commit_route", "http_policy", "http_routes", "name_pattern", "principal_key",
           "produce_route", "read_route", "registry_entry", "registry_path", "route_arn",
           "transaction_route"]

VERSION = "2012-10-17"
INVOKE = "execute-api:Invoke"
ROLES = ("produce", "consume", "admin")
_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]*")  # Kafka's topic (and our group) alphabet
_LEADING_KEYS = "dynamodb:LeadingKeys"


def name_pattern(prefix: str) -> str:
    """``"orders."`` -> ``"orders.*"``; ``"*"`` (every name) stays ``"*"``.

    Raises ValueError for characters a name cannot have (``/``, ``?``, ``*`` inside, ``:``):
    in an IAM resource or a condition they would widen the grant beyond the prefix.

    Example:
        >>> name_pattern("orders."), name_pattern("*")
        ('orders.*', '*')
    """
    stem = prefix.removesuffix("*")
    if not _NAME_CHARS.fullmatch(stem):
        raise ValueError(f"Not a topic or group name prefix: {prefix!r} "
                         "(letters, digits, '.', '_' and '-' only).")
    return f"{stem}*"


@dataclass(frozen=True)
class Grant:
    """One grant: a role and the topic / group name patterns it covers (IAM wildcards)."""

    role: str
    topics: str = "*"
    groups: str = "*"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Unknown grant role {self.role!r} (one of {', '.join(ROLES)}).")
        for pattern in (self.topics, self.groups):
            if not pattern.endswith("*") or name_pattern(pattern) != pattern:
                raise ValueError(f"Not a name pattern: {pattern!r} (a prefix and '*').")

    @classmethod
    def produce(cls, topic_prefix: str = "*", transactional_id_prefix: str = "*") -> Grant:
        """Produce to the topics; with transactions, as the transactional ids named."""
        return cls("produce", name_pattern(topic_prefix), name_pattern(transactional_id_prefix))

    @classmethod
    def consume(cls, topic_prefix: str = "*", group_prefix: str = "*") -> Grant:
        return cls("consume", name_pattern(topic_prefix), name_pattern(group_prefix))

    @classmethod
    def admin(cls) -> Grant:
        return cls("admin")

    def encode(self) -> str:
        """``"consume:orders.*:billing*"``: the compact form the grant registry stores."""
        return f"{self.role}:{self.topics}:{self.groups}"

    @classmethod
    def decode(cls, text: str) -> Grant:
        """The grant :meth:`encode` wrote; ValueError for anything else."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"Not an encoded grant: {text!r}.")
        return cls(*parts)


# ---- the HTTP API -------------------------------------------------------------------------

READ = ("GET", "/v1/topics/{topic}/partitions/{partition}/batches")
"""The route whose permission stands for reading a topic-partition named in a body."""


def produce_route(topic: str, partition: int | None = None) -> tuple[str, str]:
    """``(method, path)`` of appending to ``topic`` (one partition, or any: ``*``)."""
    return ("POST", f"/v1/topics/{topic}/partitions/"
                    f"{'*' if partition is None else partition}/batches")


def transaction_route(transactional_id: str) -> tuple[str, str]:
    """``(method, path)`` that stands for using ``transactional_id`` (a batch's query)."""
    return "POST", f"/v1/transactions/{transactional_id}/begin"


def group_commit_route(group: str) -> tuple[str, str]:
    """``(method, path)`` of committing offsets in ``group`` (offsets sent with a
    transaction)."""
    return "POST", f"/v1/groups/{group}/commits"


def read_route(topic: str, partition: int | None = None) -> tuple[str, str]:
    """``(method, path)`` of reading ``topic`` (one partition, or every one: ``*``)."""
    method, path = READ
    return method, path.format(topic=topic, partition="*" if partition is None else partition)


def http_routes(grant: Grant) -> list[tuple[str, str]]:
    """``(method, path pattern)`` pairs the grant may invoke (``*``: any method)."""
    topic, group = grant.topics, grant.groups
    if grant.role == "produce":
        return [("POST", f"/v3/clusters/*/topics/{topic}/records"),
                ("POST", f"/v3/clusters/*/topics/{topic}/records:batch"),
                produce_route(topic),
                ("POST", "/v1/producer-ids"),
                ("POST", f"/v1/transactions/{group}/*")]
    if grant.role == "consume":
        return [read_route(topic),
                ("GET", f"/v1/topics/{topic}/partitions/*/offsets"),
                ("GET", f"/v1/topics/{topic}"),
                ("*", f"/consumers/{group}"),
                ("GET", f"/v1/groups/{group}"),
                ("POST", f"/v1/groups/{group}/*")]
    return [("*", "/*")]


def route_arn(api_arn: str, method: str, path: str, stage: str = "*") -> str:
    """``{api_arn}/{stage}/{METHOD}{path}``, the shape of CDK's ``arn_for_execute_api``.

    Example:
        >>> route_arn("arn:aws:execute-api:us-east-1:123456789012:a1b2", "get", "/v1/x")
        'arn:aws:execute-api:us-east-1:123456789012:a1b2/*/GET/v1/x'
    """
    return f"{api_arn}/{stage}/{method.upper()}{path}"


def http_policy(grants: Iterable[Grant], api_arn: str) -> dict[str, Any]:
    """An identity policy allowing the grants' routes on the API ``api_arn``
    (``arn:aws:execute-api:REGION:ACCOUNT:API_ID``)."""
    statements = [{"Sid": f"{g.role.title()}{i}", "Effect": "Allow", "Action": INVOKE,
                   "Resource": [route_arn(api_arn, m, p) for m, p in http_routes(g)]}
                  for i, g in enumerate(grants)]
    return _document(statements)


# ---- direct mode --------------------------------------------------------------------------

_PRODUCE_LOG = ("dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem",
                "dynamodb:Query", "dynamodb:UpdateItem")
_READ_LOG = ("dynamodb:GetItem", "dynamodb:Query")
_MEMBER = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
           "dynamodb:UpdateItem")  # commits are TransactWriteItems of Updates
_TRANSACTIONS = ("dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem",
                 "dynamodb:UpdateItem")  # begin, commit and abort are TransactWriteItems
_ADMIN_TABLE = ("dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem",
                "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem")
_ADMIN_OBJECTS = ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")


@dataclass(frozen=True)
class Resources:
    """ARNs of one deployment's tables and bucket (CDK tokens are fine)."""

    topics_table: str
    log_table: str
    groups_table: str
    bucket: str


def _keyed(actions: tuple[str, ...], table: str, keys: list[str]) -> dict[str, Any]:
    """Actions on items whose partition key matches ``keys``; no keys, no access."""
    return {"Effect": "Allow", "Action": list(actions), "Resource": table, "Condition": {
        "ForAllValues:StringLike": {_LEADING_KEYS: keys},
        "Null": {_LEADING_KEYS: "false"}}}


def _objects(actions: tuple[str, ...], bucket: str, topic: str, *, blobs: bool = True,
             segments: bool = True) -> dict[str, Any]:
    blob, segment = schema.object_patterns(topic)
    keys = [k for k, wanted in ((blob, blobs), (segment, segments)) if wanted]
    return {"Effect": "Allow", "Action": list(actions),
            "Resource": [f"{bucket}/{key}" for key in keys]}


def _listing(bucket: str, topic: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket,
            "Condition": {"StringLike": {"s3:prefix": list(schema.object_patterns(topic))}}}


def direct_statements(grant: Grant, arns: Resources) -> list[dict[str, Any]]:
    """Policy statements for ``grant`` in direct mode (the SDK on DynamoDB and S3)."""
    topic, group = grant.topics, grant.groups
    if grant.role == "produce":
        return [_keyed(("dynamodb:GetItem",), arns.topics_table,
                       [schema.topic_item_pattern(topic)]),
                _keyed(("dynamodb:UpdateItem",), arns.topics_table,
                       [schema.PRODUCER_ID_COUNTER]),
                _keyed(_PRODUCE_LOG, arns.log_table, [schema.log_pk_pattern(topic)]),
                _keyed(_TRANSACTIONS, arns.groups_table, [schema.txn_pk_pattern(group)]),
                _objects(("s3:PutObject",), arns.bucket, topic, segments=False)]
    if grant.role == "consume":
        return [_keyed(("dynamodb:GetItem",), arns.topics_table,
                       [schema.topic_item_pattern(topic)]),
                _keyed(_READ_LOG, arns.log_table, [schema.log_pk_pattern(topic)]),
                _keyed(_MEMBER, arns.groups_table, [schema.group_pk_pattern(group)]),
                _keyed(("dynamodb:GetItem",), arns.groups_table, [schema.txn_pk_pattern("*")]),
                _objects(("s3:GetObject",), arns.bucket, topic),
                _listing(arns.bucket, topic)]
    tables = [arns.topics_table, arns.log_table, arns.groups_table]
    return [{"Effect": "Allow", "Action": list(_ADMIN_TABLE), "Resource": tables},
            _objects(_ADMIN_OBJECTS, arns.bucket, "*"), _listing(arns.bucket, "*")]


def direct_policy(grants: Iterable[Grant], arns: Resources) -> dict[str, Any]:
    """An identity policy with the direct-mode statements of every grant."""
    return _document([s for g in grants for s in direct_statements(g, arns)])


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": statements}


# ---- the grant registry (what the handlers know of each caller's HTTP grants) ---------------

_IDENTITY = re.compile(r"arn:(?P<partition>[\w-]+):(?P<service>iam|sts)::(?P<account>\d{12}):"
                       r"(?P<kind>role|user|assumed-role)/(?P<rest>.+)")


def registry_path(prefix: str) -> str:
    """The SSM parameter path under which ``grant_*`` registers the grants of a deployment.

    Example:
        >>> registry_path("streamlet")
        '/streamlet/streamlet/grants'
    """
    return f"/streamlet/{prefix}/grants"


def registry_entry(principal_arn: str, grant: Grant) -> dict[str, str]:
    """One registry parameter's value (JSON): who was granted what."""
    return {"principal": principal_arn, "grant": grant.encode()}


def principal_key(arn: str) -> str:
    """What identifies a principal across its ARN forms: a role and the sessions of it.

    A caller that assumed a role signs as ``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION``;
    the role is ``arn:aws:iam::ACCOUNT:role/PATH/NAME`` (names are unique per account,
    whatever the path). Users are keyed by name the same way; other ARNs stand for
    themselves.

    Example:
        >>> principal_key("arn:aws:sts::123456789012:assumed-role/billing/i-0abc")
        'role:aws:123456789012:billing'
        >>> principal_key("arn:aws:iam::123456789012:role/apps/billing")
        'role:aws:123456789012:billing'
    """
    found = _IDENTITY.fullmatch(arn)
    if found is None:
        return arn
    kind, rest = found["kind"], found["rest"]
    if kind == "assumed-role":
        if found["service"] != "sts" or "/" not in rest:
            return arn
        return f"role:{found['partition']}:{found['account']}:{rest.split('/')[0]}"
    if found["service"] != "iam":
        return arn
    return f"{kind}:{found['partition']}:{found['account']}:{rest.rsplit('/', 1)[-1]}"
