"""The local IAM evaluator decides as the IAM User Guide documents.

Cases are AWS's own examples, each citing its page; the wildcard matchers are also checked
against regex references with Hypothesis.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlet.policy import (
    Policy,
    arn_match,
    evaluate,
    execute_api_arn,
    wildcard_match,
)

INVOKE = "execute-api:Invoke"


def policy(*statements: dict[str, Any], name: str = "") -> Policy:
    return Policy.from_json({"Version": "2012-10-17", "Statement": list(statements)}, name)


def allowed(p: Policy, action: str, resource: str, context: Any = None) -> bool:
    return evaluate([p], action, resource, context).allowed


# ---- Resource wildcards ---------------------------------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
# ("Using wildcards in resource ARNs"): the pattern applies to the first eight objects and
# "would not match" the last three.

S3_TEST = "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*"


@pytest.mark.parametrize(("key", "expected"), [
    ("1/test/object.jpg", True), ("1/2/test/object.jpg", True),
    ("1/2/test/3/object.jpg", True), ("1/2/3/test/4/object.jpg", True),
    ("1///test///object.jpg", True), ("1/test/.jpg", True), ("/test/object.jpg", True),
    ("1/test/", True),
    ("1-test/object.jpg", False), ("test/object.jpg", False), ("1/2/test.jpg", False),
])
def test_star_matches_across_slashes_as_the_resource_page_lists(key: str,
                                                                  expected: bool) -> None:
    assert arn_match(S3_TEST, f"arn:aws:s3:::amzn-s3-demo-bucket/{key}") is expected


def test_resource_names_are_case_sensitive() -> None:
    # Same page: "In the Resource element, the IAM user name is case sensitive."
    p = policy({"Effect": "Allow", "Action": "iam:GetUser",
                "Resource": "arn:aws:iam::111122223333:user/Bob"})
    assert allowed(p, "iam:GetUser", "arn:aws:iam::111122223333:user/Bob")
    assert not allowed(p, "iam:GetUser", "arn:aws:iam::111122223333:user/bob")


def test_a_star_ending_a_segment_runs_past_colons_and_one_inside_does_not() -> None:
    # Same page: "If the * wildcard is the last character of a resource ARN segment, it
    # can expand to match beyond the colon boundaries." The ARN condition operators page
    # shows the same pattern matching this value under StringLike.
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/x.txt"
    assert wildcard_match(pattern, value) and arn_match(pattern, value)
    assert arn_match("arn:aws:dynamodb:us-*-1:*:table/t", "arn:aws:dynamodb:us-east-1:1:table/t")
    assert not arn_match("arn:aws:dynamodb:us-*-1:*:table/t",
                         "arn:aws:dynamodb:us-east:x-1:1:table/t")
    assert not arn_match("arn:aws:dynamodb:us-east-?:1:table/t",
                         "arn:aws:dynamodb:us-east-:1:table/t")


# ---- Action ---------------------------------------------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html:
# "The prefix and the action name are case insensitive. For example, iam:ListAccessKeys is
# the same as IAM:listaccesskeys." iam:*AccessKey* is the condition operators page's example.


@pytest.mark.parametrize(("pattern", "action", "expected"), [
    ("iam:ListAccessKeys", "IAM:listaccesskeys", True),
    ("IAM:listaccesskeys", "iam:ListAccessKeys", True),
    ("iam:*AccessKey*", "iam:CreateAccessKey", True),
    ("iam:*AccessKey*", "iam:ListAccessKeys", True),
    ("iam:*AccessKey*", "iam:ListUsers", False),
    ("s3:Get*", "s3:GetObject", True), ("s3:Get*", "s3:PutObject", False),
    ("s3:Get?bject", "s3:GetObject", True), ("*", "dynamodb:Query", True),
    ("execute-api:*", INVOKE, True), ("execute-api:*", "execute-apix:Invoke", False),
])
def test_actions_match_case_insensitively_with_wildcards(pattern: str, action: str,
                                                         expected: bool) -> None:
    p = policy({"Effect": "Allow", "Action": pattern, "Resource": "*"})
    assert allowed(p, action, "arn:aws:iam::111122223333:user/Bob") is expected


def test_not_action_and_not_resource_match_everything_else() -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
    p = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"})
    assert allowed(p, "s3:GetObject", "arn:aws:s3:::public/a")
    assert not allowed(p, "IAM:CreateUser", "arn:aws:s3:::public/a")
    assert not allowed(p, "s3:GetObject", "arn:aws:s3:::secret/a")


# ---- evaluation: explicit deny, allow, implicit deny ----------------------------------------
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-invoke-api.html
# "grant a user permission to view a list of pets ... but to deny the user permission to
# add a pet"; https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html

PETS = policy(
    {"Effect": "Allow", "Action": ["execute-api:Invoke"],
     "Resource": ["arn:aws:execute-api:us-east-1:account-id:api-id/*/GET/pets"]},
    {"Sid": "NoPosts", "Effect": "Deny", "Action": ["execute-api:Invoke"],
     "Resource": ["arn:aws:execute-api:us-east-1:account-id:api-id/*/POST/pets"]},
    name="pets")


def pets(method: str, path: str = "/pets", stage: str = "prod") -> str:
    return execute_api_arn("us-east-1", "account-id", "api-id", stage, method, path)


def test_the_pets_example() -> None:
    assert evaluate([PETS], INVOKE, pets("GET")).describe() == "allowed by statement #1 " \
        "of policy 'pets'"
    assert evaluate([PETS], INVOKE, pets("POST")).describe() == "explicitly denied by " \
        "statement 'NoPosts' of policy 'pets'"
    assert evaluate([PETS], INVOKE, pets("GET", "/pets/a1b2")).describe() == (
        "implicitly denied: no statement allows execute-api:Invoke on "
        "arn:aws:execute-api:us-east-1:account-id:api-id/prod/GET/pets/a1b2")


def test_an_explicit_deny_in_any_policy_overrides_an_allow() -> None:
    everything = policy({"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"})
    assert evaluate([everything], INVOKE, pets("POST")).allowed
    decision = evaluate([everything, PETS], INVOKE, pets("POST"))
    assert not decision.allowed and decision.statement is not None
    assert not evaluate([], INVOKE, pets("GET")).allowed


@pytest.mark.parametrize(("resource", "arn", "expected"), [
    # the same page's "example resource expressions"
    ("arn:aws:execute-api:*:*:*", pets("DELETE", "/a/b"), True),
    ("arn:aws:execute-api:us-east-1:*:*", pets("GET"), True),
    ("arn:aws:execute-api:us-east-1:*:*",
     "arn:aws:execute-api:eu-west-1:account-id:api-id/prod/GET/pets", False),
    ("arn:aws:execute-api:us-east-1:*:api-id/*", pets("GET"), True),
    ("arn:aws:execute-api:us-east-1:*:api-id/test/*", pets("GET", stage="test"), True),
    ("arn:aws:execute-api:us-east-1:*:api-id/test/*", pets("GET"), False),
    ("arn:aws:execute-api:us-east-1:*:api-id/test/*/mydemoresource/*",
     pets("PUT", "/mydemoresource/x", "test"), True),
    ("arn:aws:execute-api:us-east-1:*:api-id/test/GET/mydemoresource/*",
     pets("PUT", "/mydemoresource/x", "test"), False),
    ("arn:aws:execute-api:*:*:*/test/*", pets("GET", stage="test"), True),
])
def test_execute_api_resource_expressions(resource: str, arn: str, expected: bool) -> None:
    p = policy({"Effect": "Allow", "Action": [INVOKE, "execute-api:InvalidateCache"],
                "Resource": resource})
    assert allowed(p, INVOKE, arn) is expected


# ---- Streamlet's grants (infra/platform.py: CDK's arnForExecuteApi(method, path, "*")) -----


def grant(*routes: tuple[str, str]) -> Policy:
    arns = [f"arn:aws:execute-api:us-east-1:123456789012:abc123/*/{m}{p}" for m, p in routes]
    return policy({"Effect": "Allow", "Action": INVOKE, "Resource": arns})


PRODUCE_ORDERS = grant(("POST", "/v3/clusters/*/topics/orders*/records"),
                       ("POST", "/v3/clusters/*/topics/orders*/records:batch"),
                       ("POST", "/v1/topics/orders*/partitions/*/batches"),
                       ("POST", "/v1/producer-ids"))


def streamlet(method: str, path: str) -> str:
    return execute_api_arn("us-east-1", "123456789012", "abc123", "$default", method, path)


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/v3/clusters/streamlet/topics/orders/records", True),
    ("POST", "/v3/clusters/streamlet/topics/orders-eu/records:batch", True),
    ("POST", "/v1/topics/orders/partitions/3/batches", True),
    ("POST", "/v1/producer-ids", True),
    ("GET", "/v1/topics/orders/partitions/3/batches", False),
    ("POST", "/v3/clusters/streamlet/topics/payments/records", False),
    ("DELETE", "/v3/clusters/streamlet/topics/orders", False),
    # docs/security.md: IAM's * crosses '/', so the prefix grant also covers longer paths
    ("POST", "/v3/clusters/streamlet/topics/orders/x/records", True),
])
def test_grant_produce_scopes_by_topic_prefix(method: str, path: str, expected: bool) -> None:
    assert allowed(PRODUCE_ORDERS, INVOKE, streamlet(method, path)) is expected


def test_grant_admin_covers_every_route() -> None:
    admin = grant(("*", "/*"))
    assert allowed(admin, INVOKE, streamlet("DELETE", "/v3/clusters/streamlet/topics/x"))
    assert not allowed(admin, INVOKE, streamlet("GET", "/x").replace("abc123", "other"))


def test_execute_api_arn_is_the_documented_form() -> None:
    # arn:aws:execute-api:region:account-id:api-id/stage-name/HTTP-VERB/resource-path-specifier
    # (API Gateway developer guide, above); an HTTP API's routeArn for a Lambda authorizer
    # has the same shape, e.g. arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/request
    # (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html)
    assert execute_api_arn("us-east-1", "123456789012", "abcdef123", "test", "get",
                           "/request") == \
        "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/request"
    assert streamlet("post", "/v1/producer-ids").endswith("abc123/$default/POST/v1/producer-ids")


# ---- conditions -----------------------------------------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
# The ForAllValues and ForAnyValue tables (ec2:DeleteTags on aws:TagKeys).

TAGS = ["environment", "cost-center"]
ALL_VALUES = policy({"Effect": "Allow", "Action": "ec2:DeleteTags",
                     "Resource": "arn:aws:ec2:us-east-1:111122223333:instance/*",
                     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": TAGS},
                                   "Null": {"aws:TagKeys": "false"}}})
ANY_VALUE = policy({"Effect": "Allow", "Action": "ec2:DeleteTags",
                    "Resource": "arn:aws:ec2:us-east-1:111122223333:instance/*",
                    "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": TAGS}}})
INSTANCE = "arn:aws:ec2:us-east-1:111122223333:instance/i-1"


@pytest.mark.parametrize(("tags", "all_values", "any_value"), [
    (["environment"], True, True),
    (["cost-center"], True, True),
    (["environment", "cost-center"], True, True),
    (["environment", "dept"], False, True),
    (["dept"], False, False),
    (None, False, False),
])
def test_the_set_operator_tables(tags: list[str] | None, all_values: bool,
                                 any_value: bool) -> None:
    context = {} if tags is None else {"aws:TagKeys": tags}
    assert allowed(ALL_VALUES, "ec2:DeleteTags", INSTANCE, context) is all_values
    assert allowed(ANY_VALUE, "ec2:DeleteTags", INSTANCE, context) is any_value


def test_for_all_values_is_true_on_a_missing_key_without_the_null_check() -> None:
    # Same page: ForAllValues "also returns true if there are no context keys in the request"
    p = policy({"Effect": "Allow", "Action": "ec2:DeleteTags", "Resource": "*",
                "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": TAGS}}})
    assert allowed(p, "ec2:DeleteTags", INSTANCE, {})
    assert allowed(p, "ec2:DeleteTags", INSTANCE, {"aws:TagKeys": []})


def test_the_dynamodb_requested_attributes_examples() -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html
    table = "arn:aws:dynamodb:us-east-1:111122223333:table/Thread"
    reads = policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table,
                    "Condition": {"ForAllValues:StringLike": {"dynamodb:requestedAttributes": [
                        "PostDateTime", "Message", "Tags"]}}})
    assert allowed(reads, "dynamodb:GetItem", table,
                   {"dynamodb:requestedAttributes": ["PostDateTime", "Message"]})
    assert not allowed(reads, "dynamodb:GetItem", table,
                       {"dynamodb:requestedAttributes": ["PostDateTime", "UserName"]})
    writes = policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table},
                    {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": table,
                     "Condition": {"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": [
                         "ID", "PostDateTime"]}}})
    assert not allowed(writes, "dynamodb:PutItem", table, {
        "dynamodb:requestedAttributes": ["UserName", "Message", "PostDateTime"]})
    assert allowed(writes, "dynamodb:PutItem", table,
                   {"dynamodb:requestedAttributes": ["UserName"]})


def test_leading_keys_scope_direct_mode_to_topics() -> None:
    # DESIGN.md: the log table's partition key starts with the topic name, so
    # dynamodb:LeadingKeys (multivalued: ForAllValues) scopes a role to topics.
    table = "arn:aws:dynamodb:us-east-1:111122223333:table/streamlet-log"
    p = policy({"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:PutItem"],
                "Resource": table,
                "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["orders#*"]},
                              "Null": {"dynamodb:LeadingKeys": "false"}}})
    assert allowed(p, "dynamodb:Query", table, {"dynamodb:LeadingKeys": ["orders#0"]})
    assert not allowed(p, "dynamodb:Query", table, {"dynamodb:LeadingKeys": ["payments#0"]})
    assert not allowed(p, "dynamodb:Scan", table, {})
    assert not allowed(p, "dynamodb:Query", table, {})  # no leading key: the Null check


@pytest.mark.parametrize(("operator", "present", "missing"), [
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
    # "If the key ... is not present in the request context, the values do not match and the
    # condition is false. If the policy condition requires that the key is not matched, such
    # as StringNotLike ..., and the right key is not present, the condition is true."
    ("StringEquals", True, False), ("StringLike", True, False),
    ("StringNotEquals", False, True), ("StringNotLike", False, True),
    ("StringEqualsIfExists", True, True), ("StringNotEqualsIfExists", False, True),
    ("StringEqualsIgnoreCase", True, False), ("StringNotEqualsIgnoreCase", False, True),
])
def test_a_missing_key(operator: str, present: bool, missing: bool) -> None:
    p = policy({"Effect": "Allow", "Action": "iam:*", "Resource": "*",
                "Condition": {operator: {"aws:PrincipalTag/job-category": "iamuser-admin"}}})
    tagged = {"aws:PrincipalTag/job-category": "iamuser-admin"}
    assert allowed(p, "iam:CreateAccessKey", "*", tagged) is present
    assert allowed(p, "iam:CreateAccessKey", "*", {}) is missing


def test_several_operators_and_keys_are_anded_and_values_ored_or_nored() -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
    p = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {
        "StringEquals": {"aws:PrincipalTag/department": ["finance", "hr"],
                         "aws:PrincipalTag/role": ["audit", "security"]},
        "StringNotEquals": {"aws:PrincipalTag/team": ["red", "blue"]}}})
    ok = {"aws:PrincipalTag/department": "hr", "aws:PrincipalTag/role": "audit",
          "aws:PrincipalTag/team": "green"}
    assert allowed(p, "s3:GetObject", "arn:aws:s3:::b/k", ok)
    for key, value in [("aws:PrincipalTag/department", "it"), ("aws:PrincipalTag/role", "dev"),
                       ("aws:PrincipalTag/team", "blue")]:
        assert not allowed(p, "s3:GetObject", "arn:aws:s3:::b/k", {**ok, key: value})


def test_condition_key_names_are_case_insensitive_and_values_are_not() -> None:
    # reference_policies_elements_condition.html: "Condition key names are not case-sensitive"
    p = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Condition": {"StringEquals": {"AWS:PrincipalTag/Owner": "richard-roe"}}})
    assert allowed(p, "s3:GetObject", "*", {"aws:principaltag/owner": "richard-roe"})
    assert not allowed(p, "s3:GetObject", "*", {"aws:PrincipalTag/Owner": "Richard-Roe"})


def test_bool_and_null() -> None:
    # Condition operators page: the BooleanExample (deny without TLS) and the
    # aws:TokenIssueTime Null example (no temporary credentials).
    tls = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                 {"Sid": "BooleanExample", "Action": "s3:*", "Effect": "Deny",
                  "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET",
                               "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
                  "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    obj = "arn:aws:s3:::DOC-EXAMPLE-BUCKET/k"
    assert not allowed(tls, "s3:GetObject", obj, {"aws:SecureTransport": "false"})
    assert allowed(tls, "s3:GetObject", obj, {"aws:SecureTransport": "true"})
    assert allowed(tls, "s3:GetObject", obj, {})  # missing key: Bool is false, no deny
    long_term = policy({"Action": "ec2:*", "Effect": "Allow", "Resource": "*",
                        "Condition": {"Null": {"aws:TokenIssueTime": "true"}}})
    assert allowed(long_term, "ec2:RunInstances", "*", {})
    assert not allowed(long_term, "ec2:RunInstances", "*",
                       {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"})


def test_bool_accepts_a_json_boolean() -> None:
    p = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": True}}})
    assert allowed(p, "s3:GetObject", "*", {"aws:SecureTransport": "true"})


def test_if_exists_lets_other_resources_through() -> None:
    # Condition operators page, ...IfExists: "RunInstance" with StringLikeIfExists.
    p = policy({"Sid": "RunInstance", "Effect": "Allow", "Action": "ec2:RunInstances",
                "Resource": "*", "Condition": {"StringLikeIfExists": {
                    "ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}})
    assert allowed(p, "ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/*",
                   {"ec2:InstanceType": "t2.micro"})
    assert not allowed(p, "ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/*",
                       {"ec2:InstanceType": "c5.large"})
    assert allowed(p, "ec2:RunInstances", "arn:aws:ec2:us-east-1:1:image/ami-1", {})


# ---- refusals -------------------------------------------------------------------------------


def statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    return {**base, **changes}


@pytest.mark.parametrize(("document", "message"), [
    ({"Version": "2012-10-17", "Statement": statement(NotPrincipal={"AWS": "x"})},
     "NotPrincipal is not supported"),
    ({"Version": "2012-10-17", "Statement": statement(Principal="*")},
     "Principal is not supported"),
    # the Resource page's ${aws:username} example
    ({"Version": "2012-10-17", "Statement": statement(
        Resource="arn:aws:dynamodb:us-east-2:111122223333:table/${aws:username}")},
     "Policy variables are not supported"),
    # DynamoDB's fine-grained access example: ${www.amazon.com:user_id}
    ({"Version": "2012-10-17", "Statement": statement(Condition={"ForAllValues:StringEquals": {
        "dynamodb:LeadingKeys": ["${www.amazon.com:user_id}"]}})},
     "Policy variables are not supported"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "NumericLessThanEquals": {"s3:max-keys": "10"}})},
     "Unsupported condition operator 'NumericLessThanEquals'"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})}, "'IpAddress'"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "ArnLike": {"aws:SourceArn": "arn:aws:sns:*"}})}, "'ArnLike'"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "NullIfExists": {"k": "true"}})}, "'NullIfExists'"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "ForAnyValue:Bool": {"k": "true"}})}, "set operators apply to the string operators"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "ForEveryValue:StringLike": {"k": "v"}})}, "set operator in 'ForEveryValue"),
    ({"Version": "2012-10-17", "Statement": statement(Condition={
        "Bool": {"aws:SecureTransport": "yes"}})}, "takes 'true' or 'false'"),
    ({"Version": "2008-10-17", "Statement": statement()}, "Version must be '2012-10-17'"),
    ({"Statement": statement()}, "Version must be '2012-10-17', not None"),
    ({"Version": "2012-10-17", "Statement": statement(Condtion={})},
     "Unsupported statement element 'Condtion'"),
    ({"Version": "2012-10-17", "Statement": statement(Effect="allow")}, "Effect must be"),
    ({"Version": "2012-10-17", "Statement": statement(NotAction="s3:*")}, "exactly one of"),
    ({"Version": "2012-10-17", "Statement": statement(Action="GetObject")},
     "is not '*' or 'service:action'"),
    ({"Version": "2012-10-17", "Statement": statement(Resource=[])}, "non-empty list"),
    ({"Version": "2012-10-17", "Statement": []}, "non-empty list of objects"),
])
def test_unsupported_or_invalid_policies_are_refused(document: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Policy.from_json(document)


def test_a_multivalued_key_under_a_plain_operator_is_refused() -> None:
    # single-vs-multi-valued page: "Multivalued context keys require a condition set operator."
    p = policy(statement(Condition={"StringEquals": {"aws:TagKeys": "environment"}}))
    with pytest.raises(ValueError, match="require a condition set operator"):
        evaluate([p], "s3:GetObject", "*", {"aws:TagKeys": ["environment"]})


def test_json_text_parses() -> None:
    text = '{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "*", ' \
           '"Resource": "*"}}'
    assert not evaluate([Policy.from_json(text)], "s3:GetObject", "*").allowed


# ---- the matchers against references ---------------------------------------------------------


def glob_reference(pattern: str) -> re.Pattern[str]:
    """fnmatch's translation without its [...] classes: * is .*, ? is ., all else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def arn_reference(pattern: str) -> re.Pattern[str]:
    """The Resource rule, segment by segment: in the first five segments * and ? stay inside
    the segment unless the * ends it; in the resource part they match anything."""
    parts = pattern.split(":", 5)
    head = parts[:5] if len(parts) == 6 else parts
    out = []
    for segment in head:
        out.append("".join(
            (".*" if i == len(segment) - 1 else "[^:]*") if c == "*" else
            "[^:]" if c == "?" else re.escape(c) for i, c in enumerate(segment)))
    if len(parts) == 6:
        out.append(glob_reference(parts[5]).pattern)
    return re.compile(":".join(out), re.DOTALL)


PATTERNS = st.text(alphabet="ab:/*?[]", max_size=12)
TEXTS = st.text(alphabet="ab:/[]", max_size=12)


@given(PATTERNS, TEXTS)
def test_wildcard_match_is_the_glob_reference(pattern: str, text: str) -> None:
    assert wildcard_match(pattern, text) is bool(glob_reference(pattern).fullmatch(text))


@given(PATTERNS, TEXTS)
def test_ignore_case_compares_lowered(pattern: str, text: str) -> None:
    assert wildcard_match(pattern.upper(), text, ignore_case=True) is \
        wildcard_match(pattern.lower(), text.lower())


@given(PATTERNS, TEXTS)
def test_arn_match_is_the_segment_reference_and_never_wider_than_the_glob(
        pattern: str, text: str) -> None:
    matched = arn_match(pattern, text)
    assert matched is bool(arn_reference(pattern).fullmatch(text))
    assert not matched or wildcard_match(pattern, text)


def test_matching_does_not_backtrack() -> None:
    start = time.monotonic()
    assert not wildcard_match("*a" * 40 + "b", "a" * 2000)
    assert not arn_match("arn:aws:s3:::" + "*a" * 40 + "b", "arn:aws:s3:::" + "a" * 2000)
    assert time.monotonic() - start < 5
