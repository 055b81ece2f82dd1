"""The Kafka gateway's deployment (infra/kafka.py): Fargate behind an NLB, least privilege,
autoscaling on CPU, and cdk-nag and checkov at zero unacknowledged findings.

Synthesized on its own (the main stack's tests keep their resource counts): once with a TLS
certificate (what the docs recommend) and the image given (no Docker here)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Annotations, Match, Template

from infra import StreamletStack

from .test_checks import (  # noqa: F401 (checkov: a fixture)
    MIN_WORDS,
    SECURITY_DOC,
    checkov,
    checkov_clean,
)

STACK = "KafkaTest"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def kafka_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[StreamletStack, Path]:
    outdir = tmp_path_factory.mktemp("cdk.kafka")
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})
    stack = StreamletStack(app, STACK, prefix="acme", kafka=True,
                           kafka_certificate_arn=CERTIFICATE,
                           kafka_image=ecs.ContainerImage.from_registry(
                               "public.ecr.aws/docker/library/python:3.13-slim"))
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks(reports=True))
    cdk.Aspects.of(stack).add(cdk_nag.ServerlessChecks(reports=True))
    app.synth()
    return stack, outdir


def _template(kafka_stack: tuple[StreamletStack, Path]) -> dict[str, Any]:
    return Template.from_stack(kafka_stack[0]).to_json()


def _of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_the_service_runs_behind_a_tls_nlb_and_scales_on_cpu(kafka_stack: Any) -> None:
    template = _template(kafka_stack)
    (service,) = _of(template, "AWS::ECS::Service")
    assert service["Properties"]["DesiredCount"] == 2
    assert service["Properties"]["LaunchType"] == "FARGATE"
    assert service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"][
        "AssignPublicIp"] == "DISABLED"
    (listener,) = _of(template, "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Properties"]["Protocol"] == "TLS" and listener["Properties"]["Port"] == 9092
    assert listener["Properties"]["Certificates"] == [{"CertificateArn": CERTIFICATE}]
    (policy,) = _of(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "ECSServiceAverageCPUUtilization"
    (task,) = _of(template, "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert container["ReadonlyRootFilesystem"] is True
    command = container["Command"]
    assert command[:2] == ["gateway", "--endpoint"] and "--auth" in command
    assert command[command.index("--auth") + 1] == "iam"
    outputs = template["Outputs"]
    assert "KafkaBootstrap" in outputs


def test_the_task_role_has_the_engines_access_and_the_registry_only(kafka_stack: Any) -> None:
    template = _template(kafka_stack)
    role_ids = [k for k, r in template["Resources"].items()
                if r["Type"] == "AWS::IAM::Role" and "ecs-tasks.amazonaws.com" in json.dumps(
                    r["Properties"]["AssumeRolePolicyDocument"]) and "KafkaTaskRole" in k]
    assert len(role_ids) == 1
    statements = [s for p in _of(template, "AWS::IAM::Policy")
                  if {"Ref": role_ids[0]} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str)
                                              else s["Action"])}
    assert all(":" in a and not a.endswith(":*") and a != "*" for a in actions)
    assert {a.split(":")[0] for a in actions} == {"dynamodb", "s3", "ssm"}
    assert "ssm:GetParametersByPath" in actions and "sts:AssumeRole" not in actions
    for statement in statements:
        assert statement["Resource"] != "*"


def test_cdk_nag_finds_nothing_unacknowledged(kafka_stack: Any) -> None:
    stack, outdir = kafka_stack
    annotations = Annotations.from_stack(stack)
    for pack in ("AwsSolutions", "Serverless"):
        finding = Match.string_like_regexp(f"{pack}-.*")
        assert annotations.find_error("*", finding) == []
        assert annotations.find_warning("*", finding) == []
        (report,) = outdir.glob(f"{pack}-*{STACK}-NagReport.csv")
        verdicts = {row["Compliance"] for row in csv.DictReader(report.open())}
        assert verdicts <= {"Compliant", "Suppressed"}


def test_every_acknowledgement_has_a_reason_and_is_documented(kafka_stack: Any) -> None:
    documented = SECURITY_DOC.read_text()
    for resource in _template(kafka_stack)["Resources"].values():
        metadata = resource.get("Metadata", {})
        for rule in metadata.get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(rule["reason"].split()) >= MIN_WORDS and rule["id"] in documented
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert len(skip["comment"].split()) >= MIN_WORDS and skip["id"] in documented


def test_checkov_finds_no_failures(kafka_stack: Any, checkov: Path) -> None:  # noqa: F811
    checkov_clean(checkov, kafka_stack[1] / f"{STACK}.template.json")
