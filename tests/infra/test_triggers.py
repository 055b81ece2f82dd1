"""``add_trigger`` and the sinks, synthesized: the dispatcher, its streams, mappings, queues,
activation and least-privilege role; cdk-nag and checkov find nothing unacknowledged.

A stack of its own (the shared one in conftest stays the base deployment): a user's
function and a queue beside the platform, a trigger with a dead-letter topic, one with an
SQS destination, and the four sinks.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match, Template

from infra import StreamletStack
from infra.checks import acknowledge
from infra.triggers import StreamletTriggers

from .conftest import SynthesizedStack
from .test_checks import (  # noqa: F401  (checkov: a fixture)
    PACKS,
    SECURITY_DOC,
    checkov,
    checkov_clean,
)

STACK = "Triggered"
_USER_FUNCTION = ("A stand-in for the user's own function in this test stack; its settings "
                  "are the user's choice, not Streamlet's.")


class Triggered(SynthesizedStack):
    def dispatcher(self) -> tuple[str, dict[str, Any]]:
        return next((k, f) for k, f in self.resources("AWS::Lambda::Function").items()
                    if f["Properties"]["Handler"] == "functions.api.dispatcher_handler")


def _user_function(stack: cdk.Stack) -> lambda_.Function:
    function = lambda_.Function(stack, "Billing", runtime=lambda_.Runtime.PYTHON_3_13,
                                handler="index.handler", tracing=lambda_.Tracing.ACTIVE,
                                code=lambda_.Code.from_inline("def handler(e, c): pass"))
    acknowledge(function, children=True, nag={
        "AwsSolutions-IAM4": _USER_FUNCTION, "AwsSolutions-IAM5": _USER_FUNCTION,
        "AwsSolutions-L1": _USER_FUNCTION,
        "Serverless-LambdaDLQ": _USER_FUNCTION, "Serverless-LambdaDefaultMemorySize":
        _USER_FUNCTION, "Serverless-LambdaLatestVersion": _USER_FUNCTION,
        "Serverless-LambdaDefaultTimeout": _USER_FUNCTION},
        checkov={"CKV_AWS_115": _USER_FUNCTION, "CKV_AWS_116": _USER_FUNCTION,
                 "CKV_AWS_117": _USER_FUNCTION, "CKV_AWS_173": _USER_FUNCTION})
    return function


@pytest.fixture(scope="module")
def triggered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triggered]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})
    stack = StreamletStack(app, STACK, prefix="acme")
    platform = stack.platform
    billing = _user_function(stack)
    lake = s3.Bucket(stack, "Lake", enforce_ssl=True, versioned=True,
                     block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                     encryption=s3.BucketEncryption.S3_MANAGED,
                     server_access_logs_bucket=platform.storage.access_logs,
                     server_access_logs_prefix="lake/")
    queue = sqs.Queue(stack, "Orders", enforce_ssl=True, fifo=True,
                      encryption=sqs.QueueEncryption.KMS_MANAGED)
    failures = sqs.Queue(stack, "Failures", enforce_ssl=True,
                         encryption=sqs.QueueEncryption.KMS_MANAGED)
    users_queue = ("A stand-in for a queue of the user's own application; whether it has a "
                   "dead-letter queue is the application's choice.")
    for q in (queue, failures):
        acknowledge(q, nag={"AwsSolutions-SQS3": users_queue,
                            "Serverless-SQSRedrivePolicy": users_queue})
    platform.add_trigger("orders", billing, batch_size=50, on_failure="orders.dlq",
                         bisect_batch_on_function_error=True, maximum_retry_attempts=3,
                         report_batch_item_failures=True, key_filter="eu-*")
    platform.add_trigger("clicks", billing, name="clicks-billing", on_failure=failures,
                         starting_position="TRIM_HORIZON",
                         maximum_batching_window=cdk.Duration.seconds(2))
    platform.add_s3_sink("orders", lake, prefix="raw/", dead_letter_topic="orders.dlq")
    platform.add_firehose_sink("orders", "orders-stream")
    platform.add_eventbridge_sink("orders", events.EventBus(stack, "Bus"),
                                  detail_type="Order Placed")
    platform.add_sqs_sink("orders", queue)
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks(reports=True))
    cdk.Aspects.of(stack).add(cdk_nag.ServerlessChecks(reports=True))
    app.synth()
    yield Triggered(stack, Template.from_stack(stack), outdir)


def _statements(triggered: Triggered, role_id: str) -> list[dict[str, Any]]:
    return [statement for policy in triggered.resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role(triggered: Triggered) -> str:
    return str(triggered.dispatcher()[1]["Properties"]["Role"]["Fn::GetAtt"][0])


def test_the_log_and_groups_tables_stream_keys_and_new_images(triggered: Triggered) -> None:
    views = {t["Properties"]["TableName"]: t["Properties"].get("StreamSpecification")
             for t in triggered.resources("AWS::DynamoDB::Table").values()}
    assert views == {"acme-topics": None,
                     "acme-log": {"StreamViewType": "KEYS_ONLY"},
                     "acme-groups": {"StreamViewType": "NEW_IMAGE"}}


def test_the_dispatcher_runs_the_configured_triggers(triggered: Triggered) -> None:
    _, function = triggered.dispatcher()
    props = function["Properties"]
    assert (props["Timeout"], props["MemorySize"], props["Architectures"]) == \
        (900, 1024, ["arm64"])
    env = props["Environment"]["Variables"]
    assert env["STREAMLET_TABLE_PREFIX"] == "acme" and "STREAMLET_WAKEUP_QUEUE" in env
    rendered = json.dumps(env["STREAMLET_TRIGGERS"])
    for name in ("orders.Billing", "clicks-billing", "orders.s3", "orders.firehose",
                 "orders.eventbridge", "orders.sqs"):
        assert f'\\"name\\":\\"{name}\\"' in rendered, name
    assert '\\"key_filter\\":\\"eu-*\\"' in rendered


def test_mappings_are_filtered_to_triggered_topics_and_trigger_groups(
        triggered: Triggered) -> None:
    mappings = triggered.resources("AWS::Lambda::EventSourceMapping").values()
    streams = [m["Properties"] for m in mappings if "StartingPosition" in m["Properties"]]
    assert len(streams) == 2 and len(mappings) == 3  # two streams and the wake-ups
    patterns = [json.loads(p["FilterCriteria"]["Filters"][0]["Pattern"]) for p in streams]
    log, groups = sorted(patterns, key=lambda p: "NewImage" in p["dynamodb"])
    assert log["dynamodb"]["Keys"]["pk"]["S"] == [{"prefix": "clicks/"}, {"prefix": "orders/"}]
    assert log["eventName"] == ["INSERT"]
    assert sorted(groups["dynamodb"]["Keys"]["pk"]["S"]) == [
        "group#clicks-billing", "group#orders.Billing", "group#orders.eventbridge",
        "group#orders.firehose", "group#orders.s3", "group#orders.sqs"]
    for props in streams:
        assert props["StartingPosition"] == "LATEST" and props["ParallelizationFactor"] == 1
        assert "OnFailure" in props["DestinationConfig"]
    # the smallest trigger window (500 ms), rounded up: the mapping gathers the signals
    assert {p.get("MaximumBatchingWindowInSeconds") for p in streams} == {1, None}


def test_the_dispatcher_may_invoke_exactly_the_bound_functions(triggered: Triggered) -> None:
    invoke = [s for s in _statements(triggered, _role(triggered))
              if "lambda:InvokeFunction" in _listed(s["Action"])]
    resources = [r for s in invoke for r in _listed(s["Resource"])]
    billing = next(k for k, f in triggered.resources("AWS::Lambda::Function").items()
                   if f["Properties"]["Handler"] == "index.handler")
    assert resources and all(r == {"Fn::GetAtt": [billing, "Arn"]} for r in resources)


def test_table_access_is_scoped_to_the_triggered_topics_and_groups(triggered: Triggered) -> None:
    keys = {}
    for statement in _statements(triggered, _role(triggered)):
        condition = statement.get("Condition", {})
        leading = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        if any(a.startswith("dynamodb:") and a not in (
                "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                "dynamodb:ListStreams") for a in _listed(statement["Action"])):
            assert leading is not None, statement  # every table statement is scoped
            assert condition["Null"] == {"dynamodb:LeadingKeys": "false"}
            for key in leading:
                keys.setdefault(key, set()).update(_listed(statement["Action"]))
    assert keys["orders/*"] == {"dynamodb:GetItem", "dynamodb:Query"}
    assert "dynamodb:PutItem" in keys["orders.dlq/*"]
    assert keys["group#orders.Billing"] == {"dynamodb:GetItem", "dynamodb:PutItem",
                                            "dynamodb:Query", "dynamodb:UpdateItem"}
    # read_committed looks transactions up; it never writes them
    assert keys["txn#*"] == {"dynamodb:GetItem"}
    assert "dynamodb:Scan" not in {a for actions in keys.values() for a in actions}


def test_sinks_may_write_only_their_destinations(triggered: Triggered) -> None:
    found: dict[str, list[Any]] = {}
    for statement in _statements(triggered, _role(triggered)):
        for action in _listed(statement["Action"]):
            if action in ("s3:PutObject", "firehose:PutRecordBatch", "events:PutEvents",
                          "sqs:SendMessage"):
                found.setdefault(action, []).extend(_listed(statement["Resource"]))
    s3_objects = json.dumps(found["s3:PutObject"])
    assert "/raw/orders/*" in s3_objects and "/blobs/orders.dlq/*" in s3_objects
    assert "deliverystream/orders-stream" in json.dumps(found["firehose:PutRecordBatch"])
    assert len(found["events:PutEvents"]) == 1 and len(found["sqs:SendMessage"]) == 4


def test_no_wildcard_actions_and_star_resources_only_for_xray(triggered: Triggered) -> None:
    for statement in _statements(triggered, _role(triggered)):
        for action in _listed(statement["Action"]):
            assert "*" not in action, statement
        if "*" in _listed(statement["Resource"]):
            assert set(_listed(statement["Action"])) <= {"xray:PutTraceSegments",
                                                         "xray:PutTelemetryRecords"}


def test_wakeups_are_an_encrypted_queue_with_a_dead_letter_queue(triggered: Triggered) -> None:
    queues = [q["Properties"] for k, q in triggered.resources("AWS::SQS::Queue").items()
              if "Triggers" in k]
    assert len(queues) == 2 and all(q["KmsMasterKeyId"] == "alias/aws/sqs" for q in queues)
    (wakeups,) = [q for q in queues if "RedrivePolicy" in q]
    assert wakeups["RedrivePolicy"]["maxReceiveCount"] == 5


def test_activation_is_a_custom_resource_of_the_dispatcher(triggered: Triggered) -> None:
    key, _ = triggered.dispatcher()
    (resource,) = triggered.resources("Custom::StreamletTriggers").values()
    assert resource["Properties"]["ServiceToken"] == {"Fn::GetAtt": [key, "Arn"]}
    assert re.fullmatch(r"[0-9a-f]{16}", resource["Properties"]["Version"])


def test_alarms_watch_the_dispatcher_and_its_dead_letters(triggered: Triggered) -> None:
    names = {a["Properties"]["MetricName"]
             for a in triggered.resources("AWS::CloudWatch::Alarm").values()
             if "Triggers" in json.dumps(a["Properties"].get("Dimensions", []))
             or "dispatcher" in a["Properties"].get("AlarmDescription", "")}
    assert {"Errors", "Throttles", "ApproximateNumberOfMessagesVisible"} <= names


def test_bad_settings_fail_at_synth(triggered: Triggered) -> None:
    platform = triggered.stack.platform
    billing = next(c for c in triggered.stack.node.children if c.node.id == "Billing")
    assert isinstance(billing, lambda_.Function)
    with pytest.raises(Exception, match="batch_size"):
        platform.add_trigger("orders", billing, name="bad", batch_size=0)
    with pytest.raises(ValueError, match="exists already"):
        platform.add_trigger("orders", billing)
    assert isinstance(platform.triggers, StreamletTriggers)


@pytest.mark.parametrize("pack", PACKS)
def test_cdk_nag_finds_nothing_unacknowledged(triggered: Triggered, pack: str) -> None:
    (report,) = triggered.outdir.glob(f"{pack}-*{STACK}-NagReport.csv")
    rows = list(csv.DictReader(report.open()))
    unacknowledged = {(r["Rule ID"], r["Resource ID"]) for r in rows
                      if r["Compliance"] not in ("Compliant", "Suppressed")}
    assert unacknowledged == set()
    annotations = Annotations.from_stack(triggered.stack)
    finding = Match.string_like_regexp(f"{pack}-.*")
    assert annotations.find_error("*", finding) == []
    assert annotations.find_warning("*", finding) == []


def test_every_acknowledgement_is_documented(triggered: Triggered) -> None:
    documented = SECURITY_DOC.read_text()
    mine = {k: r for k, r in triggered.json["Resources"].items()
            if k.startswith("StreamletTriggers")}  # not the stand-ins for the user's own
    assert len(mine) > 10
    for resource in mine.values():
        metadata = resource.get("Metadata", {})
        for rule in metadata.get("cdk_nag", {}).get("rules_to_suppress", []):
            assert rule["id"] in documented, rule["id"]
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert re.search(rf"\b{skip['id']}\b", documented), skip["id"]


def test_checkov_finds_no_failures(triggered: Triggered, checkov: Path) -> None:  # noqa: F811
    checkov_clean(checkov, triggered.outdir / f"{STACK}.template.json")
