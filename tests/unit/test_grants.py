"""Grant policies, HTTP and direct mode, decided by the IAM evaluator (streamlet.policy).

Requests are described as IAM sees them: the action, the resource ARN and, for DynamoDB,
``dynamodb:LeadingKeys`` (the partition key values the request touches; none for Scan).
"""

from __future__ import annotations

import doctest

import pytest

from streamlet.engine import grants, schema
from streamlet.engine.grants import Grant, Resources, direct_policy, http_policy, read_route
from streamlet.policy import Policy, evaluate, execute_api_arn

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2"
ARNS = Resources(topics_table="arn:aws:dynamodb:us-east-1:123456789012:table/s-topics",
                 log_table="arn:aws:dynamodb:us-east-1:123456789012:table/s-log",
                 groups_table="arn:aws:dynamodb:us-east-1:123456789012:table/s-groups",
                 bucket="arn:aws:s3:::s-data")
TID = "0123456789abcdef0123456789abcdef"


def test_doctests() -> None:
    assert doctest.testmod(grants).failed == 0


def http(grant: Grant, method: str, path: str) -> bool:
    policy = Policy.from_json(http_policy([grant], API))
    arn = execute_api_arn("us-east-1", "123456789012", "a1b2", "$default", method, path)
    return evaluate([policy], "execute-api:Invoke", arn).allowed


def ddb(grant: Grant, action: str, table: str, *keys: str) -> bool:
    context = {"dynamodb:LeadingKeys": list(keys)} if keys else {}
    return evaluate([Policy.from_json(direct_policy([grant], ARNS))], action, table,
                    context).allowed


def s3(grant: Grant, action: str, key: str | None = None, prefix: str | None = None) -> bool:
    resource = ARNS.bucket if key is None else f"{ARNS.bucket}/{key}"
    context = {} if prefix is None else {"s3:prefix": prefix}
    return evaluate([Policy.from_json(direct_policy([grant], ARNS))], action, resource,
                    context).allowed


# ---- HTTP --------------------------------------------------------------------------------


def test_http_consume_grant_reads_its_topics_and_uses_its_groups_only() -> None:
    grant = Grant.consume("billing", "billing")
    assert http(grant, *read_route("billing-eu", 0))
    assert not http(grant, *read_route("payroll", 0))
    assert http(grant, "POST", "/consumers/billing-app/instances/c1/assignments")
    assert not http(grant, "POST", "/consumers/payroll-app/instances/c1/assignments")
    assert not http(grant, "POST", "/v1/topics/billing/partitions/0/batches")  # no produce
    assert not http(grant, "DELETE", "/v1/groups/billing-app")  # group admin


def test_http_produce_and_admin_grants() -> None:
    produce = Grant.produce("orders.")
    assert http(produce, "POST", "/v3/clusters/streamlet/topics/orders.eu/records")
    assert not http(produce, "POST", "/v3/clusters/streamlet/topics/payroll/records")
    assert not http(produce, *read_route("orders.eu", 0))
    assert http(Grant.admin(), "DELETE", "/v3/clusters/streamlet/topics/payroll")


V3_READS = ["/v3/clusters/streamlet/consumer-groups/billing-app/consumers/m-1",
            "/v3/clusters/streamlet/consumer-groups/billing-app/consumers/m-1/assignments",
            "/v3/clusters/streamlet/consumer-groups/billing-app/consumers/m-1/assignments/"
            "billing/partitions/0",
            "/v3/clusters/streamlet/consumer-groups/billing-app/lags/billing/partitions/0",
            "/v3/clusters/streamlet/consumer-groups/billing-app/lags/payroll/partitions/0",
            "/v3/clusters/streamlet/topics/billing/partitions/0/offset",
            "/v3/clusters/streamlet/topics/billing/partitions/0/replicas",
            "/v3/clusters/streamlet/topics/billing/partitions/-/reassignment",
            "/v3/clusters/streamlet/brokers", "/v3/clusters/streamlet/acls"]


def test_http_v3_reads_are_the_admin_grants_only() -> None:
    """REST v3 group and partition reads stay administration, as the other v3 routes: a
    consume grant reads the same through /v1 (offsets, its group's snapshot), and a
    group-prefix pattern on v3 paths would reach every topic's lag under the group (IAM's
    ``*`` crosses ``/``)."""
    consume, produce = Grant.consume("billing", "billing"), Grant.produce("billing")
    for path in V3_READS:
        assert http(Grant.admin(), "GET", path), path
        assert not http(consume, "GET", path) and not http(produce, "GET", path), path
    assert http(consume, "GET", "/v1/topics/billing/partitions/0/offsets")
    assert http(consume, "GET", "/v1/groups/billing-app")


def test_http_only_the_admin_grant_asks_for_the_direct_endpoint() -> None:
    """``GET /v1/deployment`` names the tables and bucket: whoever serves them directly
    (``streamlet gateway``) needs the engine's full access, i.e. an administrator."""
    assert http(Grant.admin(), "GET", "/v1/deployment")
    for grant in (Grant.produce(), Grant.consume()):
        assert not http(grant, "GET", "/v1/deployment"), grant


def test_grants_encode_compactly_and_refuse_widening_patterns() -> None:
    assert Grant.consume("orders.", "billing").encode() == "consume:orders.*:billing*"
    assert Grant.decode("admin:*:*") == Grant.admin()
    for bad in ("consume:a/*:*", "consume:orders:*", "owner:*:*", "consume:*"):
        with pytest.raises(ValueError):
            Grant.decode(bad)


# ---- direct mode: DynamoDB with LeadingKeys -------------------------------------------------


def test_direct_produce_grant_writes_only_its_topics_partition_keys() -> None:
    grant = Grant.produce("orders")
    log = ARNS.log_table
    assert ddb(grant, "dynamodb:PutItem", log, f"orders/{TID}/0")
    assert ddb(grant, "dynamodb:Query", log, f"orders-eu/{TID}/7")
    assert not ddb(grant, "dynamodb:PutItem", log, f"payroll/{TID}/0")
    assert not ddb(grant, "dynamodb:PutItem", log)  # no leading key: refused by Null
    assert not ddb(grant, "dynamodb:Scan", log)
    assert not ddb(grant, "dynamodb:DeleteItem", log, f"orders/{TID}/0")
    assert not ddb(grant, "dynamodb:BatchWriteItem", log, f"orders/{TID}/0")


def test_direct_produce_grant_reads_its_topic_items_and_allocates_producer_ids() -> None:
    grant, topics = Grant.produce("orders"), ARNS.topics_table
    assert ddb(grant, "dynamodb:GetItem", topics, schema.TOPIC_PREFIX + "orders")
    assert not ddb(grant, "dynamodb:GetItem", topics, schema.TOPIC_PREFIX + "payroll")
    assert ddb(grant, "dynamodb:UpdateItem", topics, schema.PRODUCER_ID_COUNTER)
    assert not ddb(grant, "dynamodb:UpdateItem", topics, schema.TOPIC_PREFIX + "orders")
    assert not ddb(grant, "dynamodb:Scan", topics)


def test_direct_consume_grant_reads_its_topics_and_uses_its_groups() -> None:
    grant = Grant.consume("billing", "billing")
    assert ddb(grant, "dynamodb:Query", ARNS.log_table, f"billing/{TID}/0")
    assert not ddb(grant, "dynamodb:Query", ARNS.log_table, f"payroll/{TID}/0")
    assert not ddb(grant, "dynamodb:PutItem", ARNS.log_table, f"billing/{TID}/0")
    group = schema.group_pk("billing-app")
    for action in ("GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"):
        assert ddb(grant, f"dynamodb:{action}", ARNS.groups_table, group)
    assert not ddb(grant, "dynamodb:UpdateItem", ARNS.groups_table, schema.group_pk("payroll"))
    assert not ddb(grant, "dynamodb:Scan", ARNS.groups_table)
    # A BatchGetItem touching billing and payroll keys is refused as a whole (ForAllValues).
    assert not ddb(grant, "dynamodb:GetItem", ARNS.log_table, f"billing/{TID}/0",
                   f"payroll/{TID}/0")


def test_direct_admin_grant_reaches_everything_it_administers() -> None:
    admin = Grant.admin()
    assert ddb(admin, "dynamodb:Scan", ARNS.topics_table)
    assert ddb(admin, "dynamodb:BatchWriteItem", ARNS.log_table, f"payroll/{TID}/0")
    assert s3(admin, "s3:DeleteObject", f"segments/payroll/{TID}/0/{0:020}.seg")
    assert s3(admin, "s3:ListBucket", prefix=f"blobs/payroll/{TID}/")
    assert not s3(admin, "s3:ListBucket", prefix="other/")


# ---- direct mode: S3 -------------------------------------------------------------------------


def test_direct_s3_scopes_follow_the_topic_prefixes() -> None:
    produce, consume = Grant.produce("orders"), Grant.consume("orders")
    blob, segment = f"blobs/orders/{TID}/0/abc", f"segments/orders/{TID}/0/{0:020}.seg"
    assert s3(produce, "s3:PutObject", blob)
    assert not s3(produce, "s3:PutObject", segment)  # only the archiver writes segments
    assert not s3(produce, "s3:PutObject", f"blobs/payroll/{TID}/0/abc")
    assert not s3(produce, "s3:GetObject", blob)
    assert s3(consume, "s3:GetObject", blob) and s3(consume, "s3:GetObject", segment)
    assert not s3(consume, "s3:GetObject", f"segments/payroll/{TID}/0/{0:020}.seg")
    assert s3(consume, "s3:ListBucket", prefix=f"segments/orders/{TID}/0/")
    assert not s3(consume, "s3:ListBucket", prefix="segments/payroll/")
    assert not s3(consume, "s3:ListBucket")  # no prefix: the whole bucket
    assert not s3(consume, "s3:DeleteObject", blob)


# ---- the grant registry's principal keys ----------------------------------------------------


@pytest.mark.parametrize(("arn", "key"), [
    ("arn:aws:sts::123456789012:assumed-role/billing/session-1", "role:aws:123456789012:billing"),
    ("arn:aws:iam::123456789012:role/billing", "role:aws:123456789012:billing"),
    ("arn:aws:iam::123456789012:role/team/a/billing", "role:aws:123456789012:billing"),
    ("arn:aws:iam::123456789012:user/ops/alice", "user:aws:123456789012:alice"),
    ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
    ("arn:aws:sts::123456789012:federated-user/bob", None),
    ("arn:aws:iam::123456789012:assumed-role/billing/s", None),  # not an STS session ARN
])
def test_principal_keys_map_role_sessions_to_their_role(arn: str, key: str | None) -> None:
    assert grants.principal_key(arn) == (arn if key is None else key)


def test_another_accounts_role_of_the_same_name_is_another_principal() -> None:
    assert (grants.principal_key("arn:aws:sts::111111111111:assumed-role/billing/s")
            != grants.principal_key("arn:aws:iam::123456789012:role/billing"))
