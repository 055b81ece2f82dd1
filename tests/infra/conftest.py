"""One synthesis for the whole infra suite: the stack, its template and cdk-nag's verdict.

The CDK's Node runtime warns loudly about Node 20's end of life; the machine has 20.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from infra import StreamletStack

STACK = "Test"
PREFIX = "acme"
ALARM_EMAIL = "oncall@example.com"


@dataclass
class SynthesizedStack:
    """A synthesized Streamlet stack, its template and the cloud assembly's folder."""

    stack: StreamletStack
    template: Template
    outdir: Path

    @property
    def json(self) -> dict[str, Any]:
        return self.template.to_json()

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """``{logical id: resource}`` of one CloudFormation type."""
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == kind}


@dataclass
class Synthesized(SynthesizedStack):
    """The synthesized test app: the Streamlet stack and a stack of users granted access."""

    users: cdk.Stack = field(kw_only=True)
    roles: dict[str, iam.Role] = field(kw_only=True)

    def users_template(self) -> dict[str, Any]:
        return json.loads((self.outdir / f"{self.users.stack_name}.template.json").read_text())


def _users(app: cdk.App, stack: StreamletStack) -> tuple[cdk.Stack, dict[str, iam.Role]]:
    """Another stack whose roles get access through the ``grant_*`` helpers."""
    users = cdk.Stack(app, "Users")
    roles = {name: iam.Role(users, name.title(), assumed_by=iam.AccountRootPrincipal())
             for name in ("producer", "consumer", "operator", "direct_producer",
                          "direct_consumer")}
    platform = stack.platform
    platform.grant_produce(roles["producer"], topic_prefix="orders.")
    platform.grant_consume(roles["consumer"], topic_prefix="orders.", group_prefix="billing")
    platform.grant_admin(roles["operator"])
    platform.grant_produce(roles["direct_producer"], topic_prefix="orders.", direct=True)
    platform.grant_consume(roles["direct_consumer"], topic_prefix="orders.",
                           group_prefix="billing", direct=True)
    return users, roles


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Synthesized once, without asset bundling, with cdk-nag's packs on the stack."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})
    stack = StreamletStack(app, STACK, prefix=PREFIX, alarm_email=ALARM_EMAIL)
    users, roles = _users(app, stack)
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks(reports=True))
    cdk.Aspects.of(stack).add(cdk_nag.ServerlessChecks(reports=True))
    app.synth()
    return Synthesized(stack, Template.from_stack(stack), outdir, users=users, roles=roles)

