"""The Lambda functions, each with its own least-privilege role: produce, consume and admin
behind the HTTP API, and the archiver (on an EventBridge schedule, plus its HTTP routes).

``PERMISSIONS`` is the whole IAM story in one table: which actions each function may take
on which table or bucket prefix. Nothing else is granted except writing the function's own
log group and X-Ray segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from streamlet.engine.grants import registry_path
from streamlet.engine.schema import BLOB_PREFIX, SEGMENT_PREFIX

from .bundling import ARCHITECTURE, RUNTIME, lambda_code
from .checks import LOGS_DEFAULT_ENCRYPTION, acknowledge
from .storage import StreamletStorage

SERVICE_NAME = "streamlet"
GRANTS_PATH_ENV = "STREAMLET_GRANTS_PATH"
"""The grant registry's SSM path (functions/_access.py reads the grants under it)."""
METRICS_NAMESPACE = "Streamlet"

_TX_WRITE = ("dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem",
             "dynamodb:UpdateItem")  # what TransactWriteItems/TransactGetItems check in IAM

# function -> (resource, actions); resources: topics | log | groups tables, blobs (objects
# under blobs/), segments (objects under segments/), bucket (ListBucket, limited to those
# two prefixes by a condition), grants (the grant registry's SSM path: the handlers that
# check topics named in request bodies read who was granted what). Only the archiver
# writes or deletes segments.
PERMISSIONS: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "produce": (
        ("log", _TX_WRITE),
        ("topics", ("dynamodb:GetItem", "dynamodb:UpdateItem")),
        # transactions: their records and ids; a commit moves the input group's leases
        ("groups", _TX_WRITE),
        ("blobs", ("s3:PutObject",)),
        ("grants", ("ssm:GetParametersByPath",)),
    ),
    "consume": (
        ("log", ("dynamodb:GetItem", "dynamodb:Query")),
        # Scan lists the topics a REST v2 ``topic_pattern`` subscription matches.
        ("topics", ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan")),
        ("groups", ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem",
                    "dynamodb:Query", "dynamodb:UpdateItem")),
        ("blobs", ("s3:GetObject",)),
        ("segments", ("s3:GetObject",)),
        ("grants", ("ssm:GetParametersByPath",)),
    ),
    "admin": (
        ("topics", ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem",
                    "dynamodb:Scan", "dynamodb:UpdateItem")),
        ("log", ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem",
                 "dynamodb:PutItem", "dynamodb:Query")),
        # Reads for the REST v3 group and lag resources and GET /v1/groups; UpdateItem
        # (in a TransactWriteItems) resets offsets, BatchWriteItem deletes a group.
        ("groups", ("dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:Query",
                    "dynamodb:Scan", "dynamodb:UpdateItem")),
        ("blobs", ("s3:DeleteObject",)),
        ("segments", ("s3:DeleteObject",)),
        ("bucket", ("s3:ListBucket",)),
        ("grants", ("ssm:GetParametersByPath",)),
    ),
    "archiver": (
        ("log", (*_TX_WRITE, "dynamodb:DeleteItem", "dynamodb:Query")),
        ("topics", ("dynamodb:GetItem", "dynamodb:Scan")),
        # transaction records: a segment stops before an open one; expired ones are aborted
        ("groups", ("dynamodb:GetItem", "dynamodb:UpdateItem")),
        ("blobs", ("s3:DeleteObject", "s3:GetObject")),
        ("segments", ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")),
        ("bucket", ("s3:ListBucket",)),
    ),
}


@dataclass(frozen=True)
class FunctionSpec:
    """One function: its handler, size and time limit."""

    name: str
    handler: str
    memory_mb: int
    timeout: Duration
    description: str


# Every timeout stays under API Gateway's fixed 30 s integration limit.
FUNCTIONS = (
    FunctionSpec("produce", "functions.api.produce_handler", 512, Duration.seconds(15),
                 "Streamlet produce: REST v3 records and native batch appends"),
    FunctionSpec("consume", "functions.api.consume_handler", 512, Duration.seconds(29),
                 "Streamlet consume: native fetch (long-poll) and REST v2 consumers"),
    FunctionSpec("admin", "functions.api.admin_handler", 256, Duration.seconds(29),
                 "Streamlet admin: REST v3 clusters, topics, partitions, groups"),
    # Scheduled passes may run long; its HTTP routes answer within API Gateway's 30 s or
    # the caller sees 503 while the pass completes (it is idempotent).
    FunctionSpec("archiver", "functions.api.archiver_handler", 1024, Duration.minutes(10),
                 "Streamlet archiver: hot batches to S3 segments, retention, delete records"),
)
ARCHIVE_EVERY = Duration.minutes(5)

_SYNC_ONLY = ("API Gateway invokes these functions synchronously and returns every error "
              "to the caller, so there are no asynchronous events to dead-letter.")
_NO_VPC = ("The functions reach only DynamoDB and S3 through their public endpoints "
           "with IAM; a VPC would add NAT or endpoint cost and cold-start latency.")
_ENV_PLAIN = ("The environment holds only table prefix, bucket name, the grant registry's "
              "SSM path and Powertools settings, no secrets, so a customer managed key adds "
              "nothing.")
_RUNTIME_PIN = ("Python 3.13 is the newest runtime the bundled wheels and the test suite "
                "are pinned to; moving to 3.14 is a deliberate upgrade.")
_XRAY = ("X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
         "permissions, so active tracing requires Resource star here.")
_BLOBS = ("Object ARNs are scoped to the blobs/ and segments/ prefixes of the data bucket; "
          "object keys are generated per batch or segment, so a prefix wildcard is the "
          "narrowest grant.")
_SCHEDULED = ("EventBridge invokes the archiver on a schedule; every pass is idempotent and "
              "the next one redoes a failed one, and failures raise the Errors alarm, so a "
              "dead-letter queue would hold nothing worth replaying.")
_CONCURRENCY = ("Reserved concurrency is opt-in through reserved_concurrency: reserving "
                "it on a new account with a low limit makes the deployment fail.")


class StreamletFunctions(Construct):
    """The produce, consume, admin and archiver functions (one code asset, four roles).

    Args:
        storage: the tables and bucket the functions use.
        code: the Lambda code; defaults to the locally bundled asset (``lambda_code()``).
        log_retention: how long function logs are kept.
        reserved_concurrency: optional ``{"produce": n, ...}`` reservations.
        removal_policy: what happens to the log groups when the stack is deleted.
        archive_every: how often EventBridge runs an archiver and retention pass.
    """

    def __init__(self, scope: Construct, construct_id: str, *, storage: StreamletStorage,
                 code: lambda_.Code | None = None,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
                 reserved_concurrency: Mapping[str, int] | None = None,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 archive_every: Duration = ARCHIVE_EVERY) -> None:
        super().__init__(scope, construct_id)
        self._storage = storage
        shared = code or lambda_code()
        self.code = shared
        """The one code asset (the trigger dispatcher runs it too)."""
        reserved = dict(reserved_concurrency or {})
        self.functions = {
            spec.name: self._function(spec, shared, log_retention, reserved.get(spec.name),
                                      removal_policy)
            for spec in FUNCTIONS}
        self.schedule = events.Rule(
            self, "ArchiverSchedule", schedule=events.Schedule.rate(archive_every),
            description="Streamlet: archive hot batches to S3 and enforce retention",
            targets=[targets.LambdaFunction(self.functions["archiver"], retry_attempts=0)])
        acknowledge(self.schedule, nag={"Serverless-EventBusDLQ": _SCHEDULED})

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.functions[name]

    def _function(self, spec: FunctionSpec, code: lambda_.Code,
                  retention: logs.RetentionDays, reserved: int | None,
                  removal_policy: RemovalPolicy) -> lambda_.Function:
        title = spec.name.title()
        log_group = logs.LogGroup(self, f"{title}Logs", retention=retention,
                                  removal_policy=removal_policy)
        acknowledge(log_group, checkov={"CKV_AWS_158": LOGS_DEFAULT_ENCRYPTION})
        role = self._role(spec.name, title, log_group)
        function = lambda_.Function(
            self, title, runtime=RUNTIME, architecture=ARCHITECTURE, code=code,
            handler=spec.handler, role=role, memory_size=spec.memory_mb,
            timeout=spec.timeout, description=spec.description,
            tracing=lambda_.Tracing.ACTIVE, log_group=log_group,
            reserved_concurrent_executions=reserved, environment=self._environment(spec.name))
        self._acknowledge(function, role, reserved,
                          _SCHEDULED if spec.name == "archiver" else _SYNC_ONLY)
        return function

    def _environment(self, name: str) -> dict[str, str]:
        reads_grants = any(resource == "grants" for resource, _ in PERMISSIONS[name])
        return {
            "STREAMLET_TABLE_PREFIX": self._storage.names.prefix,
            "STREAMLET_BUCKET": self._storage.bucket.bucket_name,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            **({GRANTS_PATH_ENV: self._grants_path} if reads_grants else {}),
        }

    @property
    def _grants_path(self) -> str:
        return registry_path(self._storage.names.prefix)

    def _role(self, name: str, title: str, log_group: logs.LogGroup) -> iam.Role:
        role = iam.Role(self, f"{title}Role",
                        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"Streamlet {name} function: only what it needs")
        log_group.grant_write(role)
        for resource, actions in PERMISSIONS[name]:
            role.add_to_policy(self._statement(resource, actions))
        return role

    def _statement(self, resource: str, actions: tuple[str, ...]) -> iam.PolicyStatement:
        storage = self._storage
        if resource == "blobs":
            return iam.PolicyStatement(actions=list(actions),
                                       resources=[storage.bucket.arn_for_objects(
                                           f"{BLOB_PREFIX}*")])
        if resource == "segments":
            return iam.PolicyStatement(actions=list(actions),
                                       resources=[storage.bucket.arn_for_objects(
                                           f"{SEGMENT_PREFIX}*")])
        if resource == "grants":
            arn = Stack.of(self).format_arn(service="ssm", resource="parameter",
                                            resource_name=self._grants_path.lstrip("/"))
            return iam.PolicyStatement(actions=list(actions), resources=[arn])
        if resource == "bucket":
            return iam.PolicyStatement(
                actions=list(actions), resources=[storage.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{BLOB_PREFIX}*",
                                                         f"{SEGMENT_PREFIX}*"]}})
        table = {"topics": storage.topics_table, "log": storage.log_table,
                 "groups": storage.groups_table}[resource]
        return iam.PolicyStatement(actions=list(actions), resources=[table.table_arn])

    @staticmethod
    def _acknowledge(function: lambda_.Function, role: iam.Role, reserved: int | None,
                     no_dlq: str) -> None:
        acknowledge(function, nag={
            "AwsSolutions-L1": _RUNTIME_PIN, "Serverless-LambdaLatestVersion": _RUNTIME_PIN,
            "Serverless-LambdaDLQ": no_dlq,
        }, checkov={
            "CKV_AWS_116": no_dlq, "CKV_AWS_117": _NO_VPC, "CKV_AWS_173": _ENV_PLAIN,
            **({} if reserved else {"CKV_AWS_115": _CONCURRENCY}),
        })
        acknowledge(role, children=True, nag={"AwsSolutions-IAM5": f"{_XRAY} {_BLOBS}"},
                    nag_findings={"AwsSolutions-IAM5": [
                        "Resource::*",
                        {"regex": "/^Resource::<.+\\.Arn>\\/(blobs|segments)\\/\\*$/"},
                    ]})
