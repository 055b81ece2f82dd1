"""Tables and buckets, built from ``streamlet.engine.schema`` (the single source of names)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from streamlet.engine.schema import BLOB_PREFIX, SEGMENT_PREFIX, Names, TableSpec, table_specs

from .checks import acknowledge

ACCESS_LOG_PREFIX = "data-bucket/"
SEGMENT_IA_AFTER = Duration.days(30)  # S3's minimum age for a Standard-IA transition
SEGMENT_GLACIER_IR_AFTER = Duration.days(90)  # Glacier Instant Retrieval: ms ranged GETs
NONCURRENT_EXPIRE_AFTER = Duration.days(30)
ACCESS_LOG_RETENTION = Duration.days(365)
S3_LOGS_USE_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"
_AWS_MANAGED_KEY = ("Tables are encrypted with the AWS managed key aws/dynamodb and every use "
                    "is logged in CloudTrail; IAM already decides who reads the items, and a "
                    "customer managed key would add a monthly fee and key-policy upkeep.")


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _private_bucket(scope: Construct, construct_id: str, removal_policy: RemovalPolicy,
                    **props: Any) -> s3.Bucket:
    """A bucket with all four Block Public Access flags, TLS only, encrypted, versioned."""
    return s3.Bucket(
        scope, construct_id, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True, encryption=s3.BucketEncryption.S3_MANAGED, versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy, **props)


class StreamletStorage(Construct):
    """The topics, log and groups tables (on-demand, PITR, encrypted) and the data bucket.

    Args:
        prefix: table-name prefix; clients use ``direct://PREFIX?bucket=BUCKET``.
        removal_policy: RETAIN by default, so ``cdk destroy`` never drops data.
        segment_infrequent_access_after: archived segments move to S3 Standard-IA after
            this long (at least 30 days, S3's minimum for that transition).
        segment_glacier_ir_after: and to Glacier Instant Retrieval (still read with
            millisecond ranged GETs) after this long; None keeps them in Standard-IA.
        noncurrent_versions_expire_after: overwritten or deleted objects stay
            recoverable this long before S3 removes them.
        access_log_retention: how long the server access logs are kept.
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str = "streamlet",
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 segment_infrequent_access_after: Duration = SEGMENT_IA_AFTER,
                 segment_glacier_ir_after: Duration | None = SEGMENT_GLACIER_IR_AFTER,
                 noncurrent_versions_expire_after: Duration = NONCURRENT_EXPIRE_AFTER,
                 access_log_retention: Duration = ACCESS_LOG_RETENTION) -> None:
        super().__init__(scope, construct_id)
        # Log delivery through a bucket policy (not ACLs, which the buckets disable).
        self.node.set_context(S3_LOGS_USE_BUCKET_POLICY, True)
        self.names = Names(prefix=prefix, bucket=f"{prefix}-data-{Aws.ACCOUNT_ID}-{Aws.REGION}")
        self.tables = {spec.name: self._table(spec, removal_policy)
                       for spec in table_specs(self.names)}
        self.access_logs = self._access_log_bucket(removal_policy, access_log_retention)
        self.bucket = _private_bucket(
            self, "Data", removal_policy, bucket_name=self.names.bucket,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=ACCESS_LOG_PREFIX,
            lifecycle_rules=_data_lifecycle(segment_infrequent_access_after,
                                            segment_glacier_ir_after,
                                            noncurrent_versions_expire_after),
        )

    @property
    def topics_table(self) -> dynamodb.Table:
        return self.tables[self.names.topics_table]

    @property
    def log_table(self) -> dynamodb.Table:
        return self.tables[self.names.log_table]

    @property
    def groups_table(self) -> dynamodb.Table:
        return self.tables[self.names.groups_table]

    def _table(self, spec: TableSpec, removal_policy: RemovalPolicy) -> dynamodb.Table:
        table = dynamodb.Table(
            self, spec.name.removeprefix(f"{self.names.prefix}-").title(),
            table_name=spec.name,
            partition_key=_attribute(spec.hash_key),
            sort_key=_attribute(spec.range_key) if spec.range_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=removal_policy,
        )
        acknowledge(table, checkov={"CKV_AWS_119": _AWS_MANAGED_KEY})
        return table

    def _access_log_bucket(self, removal_policy: RemovalPolicy,
                           retention: Duration) -> s3.Bucket:
        bucket = _private_bucket(
            self, "AccessLogs", removal_policy,
            lifecycle_rules=[s3.LifecycleRule(
                id="expire-access-logs", expiration=retention,
                noncurrent_version_expiration=Duration.days(1))],
        )
        reason = ("This bucket is the server access log target of the data bucket; "
                  "logging its own writes would only log the log deliveries again.")
        acknowledge(bucket, checkov={"CKV_AWS_18": reason})
        return bucket


def _data_lifecycle(segment_ia_after: Duration, segment_glacier_ir_after: Duration | None,
                    noncurrent_expire: Duration) -> list[s3.LifecycleRule]:
    transitions = [s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                 transition_after=segment_ia_after)]
    if segment_glacier_ir_after is not None:
        transitions.append(s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                                         transition_after=segment_glacier_ir_after))
    return [
        s3.LifecycleRule(
            id="archived-segments", prefix=SEGMENT_PREFIX, transitions=transitions,
            noncurrent_version_expiration=noncurrent_expire,
            abort_incomplete_multipart_upload_after=Duration.days(1)),
        s3.LifecycleRule(
            id="large-batches", prefix=BLOB_PREFIX,
            noncurrent_version_expiration=noncurrent_expire,
            abort_incomplete_multipart_upload_after=Duration.days(1)),
        s3.LifecycleRule(id="delete-markers", expired_object_delete_marker=True),
    ]
