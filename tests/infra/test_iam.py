"""Least privilege: what each role may do, and what the ``grant_*`` helpers hand out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import PREFIX, Synthesized

# The only statements allowed Resource "*": X-Ray has no resource-level permissions.
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
IDENTITY_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy (inline role policies included)."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in IDENTITY_POLICIES:
            for statement in props["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        for policy in props.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []:
            for statement in policy["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def _function(synthesized: Synthesized, handler: str) -> dict[str, Any]:
    return next(f for f in synthesized.resources("AWS::Lambda::Function").values()
                if f["Properties"]["Handler"] == handler)


def _role_of(synthesized: Synthesized, handler: str) -> str:
    return str(_function(synthesized, handler)["Properties"]["Role"]["Fn::GetAtt"][0])


def _actions_by_resource(synthesized: Synthesized, handler: str) -> dict[str, set[str]]:
    """``{resource (logical id, or id + suffix): actions}`` granted to the handler's role."""
    role = _role_of(synthesized, handler)
    found: dict[str, set[str]] = {}
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for resource in _listed(statement["Resource"]):
                found.setdefault(_describe(resource), set()).update(_listed(statement["Action"]))
    return found


def _describe(resource: Any) -> str:
    if resource == "*":
        return "*"
    if "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0]
    parts = resource["Fn::Join"][1]
    if isinstance(parts[0], str):  # a formatted ARN: arn:{partition}:ssm:{region}:...
        return "".join(p if isinstance(p, str) else "{}" for p in parts)
    return parts[0]["Fn::GetAtt"][0] + "".join(p for p in parts[1:] if isinstance(p, str))


def _ids(synthesized: Synthesized, kind: str) -> dict[str, str]:
    """Table name or bucket role ("data") -> logical id."""
    if kind == "table":
        return {t["Properties"]["TableName"].split("-")[-1]: logical_id for logical_id, t in
                synthesized.resources("AWS::DynamoDB::Table").items()}
    return {"data": next(k for k, b in synthesized.resources("AWS::S3::Bucket").items()
                         if "LoggingConfiguration" in b["Properties"])}


def test_no_wildcard_actions_anywhere(synthesized: Synthesized) -> None:
    for template in (synthesized.json, synthesized.users_template()):
        for logical_id, statement in _statements(template):
            for action in _listed(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), (logical_id, action)


def test_star_resources_are_only_the_documented_xray_ones(synthesized: Synthesized) -> None:
    for logical_id, statement in _statements(synthesized.json):
        if "*" in _listed(statement["Resource"]):
            assert set(_listed(statement["Action"])) <= STAR_RESOURCE_ACTIONS, logical_id


def test_produce_role_appends_but_cannot_scan_or_delete(synthesized: Synthesized) -> None:
    tables, data = _ids(synthesized, "table"), _ids(synthesized, "bucket")["data"]
    granted = _actions_by_resource(synthesized, "functions.api.produce_handler")
    logs = next(k for k in granted if k.startswith("StreamletFunctionsProduceLogs"))
    registry = next(k for k in granted if "parameter/streamlet" in k)
    assert granted.pop(registry) == {"ssm:GetParametersByPath"}  # body-named groups, topics
    assert granted == {
        tables["log"]: {"dynamodb:ConditionCheckItem", "dynamodb:GetItem",
                        "dynamodb:PutItem", "dynamodb:UpdateItem"},
        tables["topics"]: {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        # transaction records and ids; a commit moves the input group's leases
        tables["groups"]: {"dynamodb:ConditionCheckItem", "dynamodb:GetItem",
                           "dynamodb:PutItem", "dynamodb:UpdateItem"},
        f"{data}/blobs/*": {"s3:PutObject"},
        logs: {"logs:CreateLogStream", "logs:PutLogEvents"},
        "*": STAR_RESOURCE_ACTIONS,
    }
    everything = set().union(*granted.values())
    assert not everything & {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                             "s3:DeleteObject", "s3:GetObject"}


def test_consume_role_reads_the_log_and_owns_group_state(synthesized: Synthesized) -> None:
    tables, data = _ids(synthesized, "table"), _ids(synthesized, "bucket")["data"]
    granted = _actions_by_resource(synthesized, "functions.api.consume_handler")
    assert granted[tables["log"]] == {"dynamodb:GetItem", "dynamodb:Query"}
    assert granted[tables["topics"]] == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"}
    assert granted[tables["groups"]] == {"dynamodb:GetItem", "dynamodb:PutItem",
                                         "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                                         "dynamodb:Query"}
    assert granted[f"{data}/blobs/*"] == {"s3:GetObject"}


def test_admin_role_manages_topics_and_purges_their_data(synthesized: Synthesized) -> None:
    tables, data = _ids(synthesized, "table"), _ids(synthesized, "bucket")["data"]
    granted = _actions_by_resource(synthesized, "functions.api.admin_handler")
    assert granted[tables["topics"]] == {"dynamodb:GetItem", "dynamodb:PutItem",
                                         "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                                         "dynamodb:Scan"}
    assert granted[tables["log"]] == {"dynamodb:BatchWriteItem", "dynamodb:PutItem",
                                      "dynamodb:DeleteItem", "dynamodb:Query",
                                      "dynamodb:GetItem"}
    assert granted[tables["groups"]] == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan",
                                         "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}
    assert granted[f"{data}/blobs/*"] == {"s3:DeleteObject"}
    assert granted[data] == {"s3:ListBucket"}


@pytest.mark.parametrize("handler", ["admin_handler", "archiver_handler"])
def test_listing_is_limited_to_the_blobs_and_segments_prefixes(synthesized: Synthesized,
                                                               handler: str) -> None:
    role = _role_of(synthesized, f"functions.api.{handler}")
    statements = [s for p in synthesized.resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if s["Action"] == "s3:ListBucket"]
    assert [s["Condition"] for s in statements] == [
        {"StringLike": {"s3:prefix": ["blobs/*", "segments/*"]}}]


def test_only_the_archiver_writes_segments(synthesized: Synthesized) -> None:
    writers = set()
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if "s3:PutObject" in actions and "segments/*" in json.dumps(statement["Resource"]):
                writers.update(r["Ref"] for r in policy["Properties"]["Roles"])
    assert writers == {_role_of(synthesized, "functions.api.archiver_handler")}


def test_the_schedule_invokes_the_archiver(synthesized: Synthesized) -> None:
    (rule,) = synthesized.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Properties"]["Targets"]
    archiver = next(k for k, f in synthesized.resources("AWS::Lambda::Function").items()
                    if f["Properties"]["Handler"] == "functions.api.archiver_handler")
    assert target["Arn"] == {"Fn::GetAtt": [archiver, "Arn"]}


def test_roles_are_assumable_by_lambda_only(synthesized: Synthesized) -> None:
    for role in synthesized.resources("AWS::IAM::Role").values():
        statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in statements] == [{"Service": "lambda.amazonaws.com"}]
        assert "ManagedPolicyArns" not in role["Properties"]


def test_lambda_permissions_are_scoped_to_this_api(synthesized: Synthesized) -> None:
    (api,) = synthesized.resources("AWS::ApiGatewayV2::Api")
    (rule,) = synthesized.resources("AWS::Events::Rule")
    for permission in synthesized.resources("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["Principal"] == "events.amazonaws.com":  # the archiver's schedule
            assert props["SourceArn"] == {"Fn::GetAtt": [rule, "Arn"]}
            continue
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert {"Ref": api} in props["SourceArn"]["Fn::Join"][1]


def _invoke_resources(synthesized: Synthesized, role: str) -> list[str]:
    template = synthesized.users_template()
    role_id = synthesized.users.get_logical_id(synthesized.roles[role].node.default_child)
    statements = [s for p in template["Resources"].values() if p["Type"] == "AWS::IAM::Policy"
                  and {"Ref": role_id} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert {s["Action"] for s in statements} == {"execute-api:Invoke"}
    # arn:...:execute-api:REGION:ACCOUNT:{imported api id}/STAGE/METHOD/PATH
    resources = [r["Fn::Join"][1] for s in statements for r in _listed(s["Resource"])]
    assert all("Fn::ImportValue" in parts[-2] for parts in resources)
    return [parts[-1] for parts in resources]


@pytest.mark.parametrize(("role", "expected"), [
    ("producer", ["/*/POST/v3/clusters/*/topics/orders.*/records",
                  "/*/POST/v3/clusters/*/topics/orders.*/records:batch",
                  "/*/POST/v1/topics/orders.*/partitions/*/batches",
                  "/*/POST/v1/producer-ids", "/*/POST/v1/transactions/*/*"]),
    ("consumer", ["/*/GET/v1/topics/orders.*/partitions/*/batches",
                  "/*/GET/v1/topics/orders.*/partitions/*/offsets",
                  "/*/GET/v1/topics/orders.*", "/*/*/consumers/billing*",
                  "/*/GET/v1/groups/billing*", "/*/POST/v1/groups/billing*/*"]),
    ("operator", ["/*/*/*"]),
])
def test_grants_scope_invoke_to_the_matching_routes(synthesized: Synthesized, role: str,
                                                    expected: list[str]) -> None:
    assert _invoke_resources(synthesized, role) == expected


@pytest.mark.parametrize("prefix", ["orders/", "a*b", "x?", "orders/../admin", "é"])
def test_grants_refuse_prefixes_that_would_widen_the_arn(synthesized: Synthesized,
                                                         prefix: str) -> None:
    with pytest.raises(ValueError, match="Not a topic or group name prefix"):
        synthesized.stack.platform.grant_produce(synthesized.roles["producer"],
                                                 topic_prefix=prefix)


def _role_statements(synthesized: Synthesized, role: str) -> list[dict[str, Any]]:
    template = synthesized.users_template()
    role_id = synthesized.users.get_logical_id(synthesized.roles[role].node.default_child)
    return [s for p in template["Resources"].values() if p["Type"] == "AWS::IAM::Policy"
            and {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_http_grants_are_registered_beside_the_principal(synthesized: Synthesized) -> None:
    """The handlers learn each caller's grants from SSM parameters in the grantee's stack,
    so a role of another stack adds no reference back to the Streamlet stack (a cycle)."""
    users = synthesized.users_template()["Resources"]
    entries = {}
    for parameter in (r for r in users.values() if r["Type"] == "AWS::SSM::Parameter"):
        props = parameter["Properties"]
        assert props["Name"].startswith(f"/streamlet/{PREFIX}/grants/")
        value = props["Value"]["Fn::Join"][1]  # '{"principal":"', {role arn}, '","grant":...'
        entries[value[1]["Fn::GetAtt"][0]] = value[2]
    roles = {n: synthesized.users.get_logical_id(r.node.default_child)
             for n, r in synthesized.roles.items()}
    assert entries == {roles["producer"]: '","grant":"produce:orders.*:*"}',
                       roles["consumer"]: '","grant":"consume:orders.*:billing*"}',
                       roles["operator"]: '","grant":"admin:*:*"}'}  # direct: not registered
    assert "Fn::ImportValue" not in json.dumps(synthesized.json)  # nothing of Users here


def test_the_handlers_that_check_body_topics_read_the_registry(synthesized: Synthesized
                                                               ) -> None:
    for handler in ("functions.api.consume_handler", "functions.api.admin_handler",
                    "functions.api.produce_handler"):
        function = _function(synthesized, handler)
        env = function["Properties"]["Environment"]["Variables"]
        assert env["STREAMLET_GRANTS_PATH"] == f"/streamlet/{PREFIX}/grants"
        granted = _actions_by_resource(synthesized, handler)
        path = next(k for k in granted if "parameter/streamlet" in k)
        assert granted[path] == {"ssm:GetParametersByPath"}
        assert path.endswith(f"parameter/streamlet/{PREFIX}/grants")
    archiver = _function(synthesized, "functions.api.archiver_handler")
    assert "STREAMLET_GRANTS_PATH" not in archiver["Properties"]["Environment"]["Variables"]


def test_direct_grants_scope_dynamodb_by_leading_keys(synthesized: Synthesized) -> None:
    for role in ("direct_producer", "direct_consumer"):
        statements = _role_statements(synthesized, role)
        actions = {a for s in statements for a in _listed(s["Action"])}
        assert not actions & {"dynamodb:Scan", "dynamodb:BatchWriteItem", "s3:DeleteObject",
                              "execute-api:Invoke"}
        for statement in statements:
            if any(a.startswith("dynamodb:") for a in _listed(statement["Action"])):
                condition = statement["Condition"]
                assert condition["Null"] == {"dynamodb:LeadingKeys": "false"}
                keys = condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                assert keys in (["topic#orders.*"], ["orders.*/*"], ["group#billing*"],
                                ["counter#producer_id"], ["txn#*"])
