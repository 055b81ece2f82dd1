"""The CDK stack builds its tables and bucket from the engine's schema module."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra import StreamletStack
from streamlet.engine import schema


@pytest.fixture(scope="module")
def template() -> Template:
    """Synthesized without asset bundling (no Docker, no network)."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    return Template.from_stack(StreamletStack(app, "Test", prefix="acme"))


def tables(template: Template) -> dict[str, Any]:
    return template.find_resources("AWS::DynamoDB::Table")


def test_tables_match_the_schema_module(template: Template) -> None:
    names = schema.Names(prefix="acme")
    found = {t["Properties"]["TableName"]: t["Properties"] for t in tables(template).values()}
    assert set(found) == {spec.name for spec in schema.table_specs(names)}
    for spec in schema.table_specs(names):
        props = found[spec.name]
        assert props["KeySchema"] == spec.create_table_kwargs()["KeySchema"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        if spec.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": spec.ttl_attribute, "Enabled": True}


def test_stateful_resources_are_retained(template: Template) -> None:
    for resource in [*tables(template).values(),
                     *template.find_resources("AWS::S3::Bucket").values()]:
        assert resource["DeletionPolicy"] == "Retain"


def test_bucket_is_private_encrypted_versioned_and_tls_only(template: Template) -> None:
    template.has_resource_properties("AWS::S3::Bucket", {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": Match.object_like({}),
    })
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


def test_outputs_give_clients_the_endpoint(template: Template) -> None:
    outputs = template.find_outputs("*")
    assert {"DirectEndpoint", "TopicsTable", "LogTable", "DataBucket"} <= set(outputs)
