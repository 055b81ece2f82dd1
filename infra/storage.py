"""Tables and bucket, built from ``streamlet.engine.schema`` (the single source of names)."""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from streamlet.engine.schema import Names, TableSpec, table_specs


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class StreamletStorage(Construct):
    """The topics and log tables (on-demand, PITR, encrypted) and the data bucket.

    Args:
        prefix: table-name prefix; clients use ``direct://PREFIX?bucket=BUCKET``.
        removal_policy: RETAIN by default, so ``cdk destroy`` never drops data.
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str = "streamlet",
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.names = Names(prefix=prefix, bucket=f"{prefix}-data-{Aws.ACCOUNT_ID}-{Aws.REGION}")
        self.tables = {spec.name: self._table(spec, removal_policy)
                       for spec in table_specs(self.names)}
        self.bucket = s3.Bucket(
            self, "Data", bucket_name=self.names.bucket,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED, versioned=True,
            removal_policy=removal_policy,
        )

    def _table(self, spec: TableSpec, removal_policy: RemovalPolicy) -> dynamodb.Table:
        return dynamodb.Table(
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
