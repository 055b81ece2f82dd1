"""``StreamletPlatform``: storage + functions + HTTP API + monitoring in one construct.

Example:
    >>> platform = StreamletPlatform(stack, "Streamlet", prefix="orders",
    ...                              alarm_email="oncall@example.com")     # doctest: +SKIP
    >>> platform.grant_produce(ingest_role, topic_prefix="orders.")        # doctest: +SKIP
    >>> platform.grant_consume(billing_role, topic_prefix="orders.",
    ...                        group_prefix="billing")                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from streamlet.engine.grants import (
    Grant,
    Resources,
    direct_statements,
    http_routes,
    registry_entry,
    registry_path,
)

from .api import StreamletApi
from .functions import ARCHIVE_EVERY, StreamletFunctions
from .monitoring import ARCHIVE_LAG_ALARM, StreamletMonitoring
from .storage import SEGMENT_GLACIER_IR_AFTER, SEGMENT_IA_AFTER, StreamletStorage
from .triggers import TriggerMethods

INVOKE = "execute-api:Invoke"


class StreamletPlatform(TriggerMethods, Construct):
    """A complete Streamlet deployment: what ``cdk deploy`` of the Streamlet stack creates.

    Triggers and sinks (``add_trigger``, ``add_s3_sink``, ``add_firehose_sink``,
    ``add_eventbridge_sink``, ``add_sqs_sink``) come from :mod:`infra.triggers`.

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
        self._trigger_code, self._trigger_logs = self.functions.code, log_retention
        self._trigger_removal = removal_policy

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def direct_endpoint(self) -> str:
        """The SDK's direct-mode endpoint for these tables and this bucket."""
        names = self.storage.names
        return f"direct://{names.prefix}?bucket={names.bucket}&region={Aws.REGION}"

    def grant_produce(self, principal: iam.IGrantable, topic_prefix: str = "*",
                      transactional_id_prefix: str = "*", *, direct: bool = False
                      ) -> iam.Grant:
        """Let ``principal`` produce to topics named ``topic_prefix...``, transactionally
        as the transactional ids ``transactional_id_prefix...``.

        Over the HTTP API by default; ``direct=True`` grants direct mode instead (DynamoDB
        and S3, scoped to those topics' keys: see :mod:`streamlet.engine.grants`).
        Offsets sent with a transaction also need ``grant_consume`` on their group.
        """
        return self._grant(principal, Grant.produce(topic_prefix, transactional_id_prefix),
                           direct)

    def grant_consume(self, principal: iam.IGrantable, topic_prefix: str = "*",
                      group_prefix: str = "*", *, direct: bool = False) -> iam.Grant:
        """Let ``principal`` read ``topic_prefix...`` and use groups ``group_prefix...``.

        API Gateway checks the topic or group in each route's path; the handlers check every
        topic a body names (REST v2 assignments, subscriptions, commits; the group routes'
        leases, commits and heartbeats) against the same grant, which ``grant_*`` records in
        the grant registry. Group administration (``PUT .../offsets``, ``DELETE``, listing)
        needs ``grant_admin``. ``direct=True`` grants direct mode instead.
        """
        return self._grant(principal, Grant.consume(topic_prefix, group_prefix), direct)

    def grant_admin(self, principal: iam.IGrantable, *, direct: bool = False) -> iam.Grant:
        """Let ``principal`` call every route (topic and group administration included),
        or with ``direct=True`` use every table item and data object directly."""
        return self._grant(principal, Grant.admin(), direct)

    def _grant(self, principal: iam.IGrantable, grant: Grant, direct: bool) -> iam.Grant:
        if direct:
            return self._grant_direct(principal, grant)
        self._register(principal, grant)
        arns = [self.api.execute_api_arn(method, path) for method, path in http_routes(grant)]
        return iam.Grant.add_to_principal(grantee=principal, actions=[INVOKE],
                                          resource_arns=arns)

    def _grant_direct(self, principal: iam.IGrantable, grant: Grant) -> iam.Grant:
        storage = self.storage
        arns = Resources(storage.topics_table.table_arn, storage.log_table.table_arn,
                         storage.groups_table.table_arn, storage.bucket.bucket_arn)
        made = [iam.Grant.add_to_principal(
            grantee=principal, actions=statement["Action"],
            resource_arns=_listed(statement["Resource"]), conditions=statement.get("Condition"))
            for statement in direct_statements(grant, arns)]
        combined = made[0]
        for more in made[1:]:
            combined = combined.combine(more)
        return combined

    def _register(self, principal: iam.IGrantable, grant: Grant) -> None:
        """Record the grant in the registry the handlers read (an SSM parameter).

        The parameter lives beside the principal (its stack), so a role of another stack
        adds no reference from this stack to that one (which would close a cycle: that
        stack already refers to this API).
        """
        arns = principal.grant_principal.policy_fragment.principal_json.get("AWS", [])
        if not arns:
            raise ValueError("grant_* gives HTTP access to IAM roles and users (principals "
                             "with an ARN); this principal has none.")
        scope = principal if isinstance(principal, Construct) else self
        for arn in arns:
            digest = hashlib.sha256(f"{self.node.path}|{scope.node.path}|{arn}|"
                                    f"{grant.encode()}".encode()).hexdigest()[:16]
            if scope.node.try_find_child(f"StreamletGrant{digest}") is None:
                ssm.StringParameter(
                    scope, f"StreamletGrant{digest}",
                    parameter_name=f"{registry_path(self.storage.names.prefix)}/{digest}",
                    string_value=Stack.of(scope).to_json_string(registry_entry(arn, grant)),
                    description=f"Streamlet grant registry: {grant.role} "
                                f"(topics {grant.topics}, groups {grant.groups})")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
