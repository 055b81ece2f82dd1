"""``StreamletPlatform``: storage + functions + HTTP API + monitoring in one construct.

Example:
    >>> platform = StreamletPlatform(stack, "Streamlet", prefix="orders",
    ...                              alarm_email="oncall@example.com")     # doctest: +SKIP
    >>> platform.grant_produce(ingest_role, topic_prefix="orders.")        # doctest: +SKIP
    >>> platform.grant_consume(billing_role, topic_prefix="orders.",
    ...                        group_prefix="billing")                     # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .api import StreamletApi
from .functions import ARCHIVE_EVERY, StreamletFunctions
from .monitoring import ARCHIVE_LAG_ALARM, StreamletMonitoring
from .storage import SEGMENT_GLACIER_IR_AFTER, SEGMENT_IA_AFTER, StreamletStorage

INVOKE = "execute-api:Invoke"


_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]*")  # Kafka's topic (and our group) alphabet


def _pattern(prefix: str) -> str:
    """``"orders."`` -> ``"orders.*"``; ``"*"`` (every name) stays ``"*"``.

    Raises ValueError for characters a name cannot have (``/``, ``?``, ``*`` inside):
    in an IAM resource they would widen the grant beyond the prefix.
    """
    stem = prefix.removesuffix("*")
    if not _NAME_CHARS.fullmatch(stem):
        raise ValueError(f"Not a topic or group name prefix: {prefix!r} "
                         "(letters, digits, '.', '_' and '-' only).")
    return f"{stem}*"


class StreamletPlatform(Construct):
    """A complete Streamlet deployment: what ``cdk deploy`` of the Streamlet stack creates.

    Args:
        prefix: table-name prefix (``direct://PREFIX``); one platform per prefix and region.
        removal_policy: RETAIN (default) keeps tables, buckets and logs on ``cdk destroy``.
        throttling_rate_limit / throttling_burst_limit: the API stage's steady requests per
            second and burst.
        log_retention: retention of function and access logs.
        alarm_email: subscribe this address to the (encrypted) alarm topic.
        reserved_concurrency: optional ``{"produce": n, "consume": n, "admin": n}``.
        segment_infrequent_access_after: archived segments move to Standard-IA after this.
        segment_glacier_ir_after: and to Glacier Instant Retrieval after this (None: never).
        archive_every: how often the archiver and retention pass runs (EventBridge).
        archive_lag_alarm: alarm when the oldest batch not yet archived is this old (or
            when passes stop reporting); default 6 hours.
        code: the Lambda code (defaults to the locally bundled asset).
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str = "streamlet",
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 throttling_rate_limit: int = 1000, throttling_burst_limit: int = 500,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
                 alarm_email: str | None = None,
                 reserved_concurrency: Mapping[str, int] | None = None,
                 segment_infrequent_access_after: Duration = SEGMENT_IA_AFTER,
                 segment_glacier_ir_after: Duration | None = SEGMENT_GLACIER_IR_AFTER,
                 archive_every: Duration = ARCHIVE_EVERY,
                 archive_lag_alarm: Duration = ARCHIVE_LAG_ALARM,
                 code: lambda_.Code | None = None) -> None:
        super().__init__(scope, construct_id)
        self.storage = StreamletStorage(
            self, "Storage", prefix=prefix, removal_policy=removal_policy,
            segment_infrequent_access_after=segment_infrequent_access_after,
            segment_glacier_ir_after=segment_glacier_ir_after)
        self.functions = StreamletFunctions(
            self, "Functions", storage=self.storage, code=code, log_retention=log_retention,
            reserved_concurrency=reserved_concurrency, removal_policy=removal_policy,
            archive_every=archive_every)
        self.api = StreamletApi(
            self, "Api", functions=self.functions.functions,
            throttling_rate_limit=throttling_rate_limit,
            throttling_burst_limit=throttling_burst_limit, log_retention=log_retention,
            removal_policy=removal_policy)
        self.monitoring = StreamletMonitoring(
            self, "Monitoring", functions=self.functions.functions,
            tables=self.storage.tables, api=self.api.http_api, alarm_email=alarm_email,
            archive_every=archive_every, archive_lag_alarm=archive_lag_alarm)

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def direct_endpoint(self) -> str:
        """The SDK's direct-mode endpoint for these tables and this bucket."""
        names = self.storage.names
        return f"direct://{names.prefix}?bucket={names.bucket}&region={Aws.REGION}"

    def grant_produce(self, principal: iam.IGrantable, topic_prefix: str = "*") -> iam.Grant:
        """Let ``principal`` produce to topics named ``topic_prefix...`` over the HTTP API."""
        topic = _pattern(topic_prefix)
        return self._grant(principal, [
            ("POST", f"/v3/clusters/*/topics/{topic}/records"),
            ("POST", f"/v3/clusters/*/topics/{topic}/records:batch"),
            ("POST", f"/v1/topics/{topic}/partitions/*/batches"),
            ("POST", "/v1/producer-ids"),
        ])

    def grant_consume(self, principal: iam.IGrantable, topic_prefix: str = "*",
                      group_prefix: str = "*") -> iam.Grant:
        """Let ``principal`` fetch from ``topic_prefix...`` and use groups ``group_prefix...``.

        The native fetch routes carry the topic in the path, so they are scoped by topic.
        REST v2 consumer instances and the SDK's group membership routes name their topics
        in a request body, which IAM cannot see: they are scoped by group only. Group
        administration (``PUT .../offsets``, ``DELETE``, listing) needs ``grant_admin``.
        """
        topic, group = _pattern(topic_prefix), _pattern(group_prefix)
        return self._grant(principal, [
            ("GET", f"/v1/topics/{topic}/partitions/*/batches"),
            ("GET", f"/v1/topics/{topic}/partitions/*/offsets"),
            ("GET", f"/v1/topics/{topic}"),
            ("*", f"/consumers/{group}"),
            ("GET", f"/v1/groups/{group}"),
            ("POST", f"/v1/groups/{group}/*"),
        ])

    def grant_admin(self, principal: iam.IGrantable) -> iam.Grant:
        """Let ``principal`` call every route (topic and group administration included)."""
        return self._grant(principal, [("*", "/*")])

    def _grant(self, principal: iam.IGrantable, routes: list[tuple[str, str]]) -> iam.Grant:
        arns = [self.api.execute_api_arn(method, path) for method, path in routes]
        return iam.Grant.add_to_principal(grantee=principal, actions=[INVOKE],
                                          resource_arns=arns)
