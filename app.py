#!/usr/bin/env python3
"""The CDK app: `cdk synth` / `cdk deploy` (or `python app.py` to synthesize offline).

Context (`-c key=value`):
  prefix=NAME          table prefix (default "streamlet")
  removal=destroy      throwaway dev stacks: tables, buckets and logs go with the stack
  alarm_email=ADDRESS  subscribe ADDRESS to the encrypted alarm topic
  bundle=false         skip building the Lambda asset (template checks only; not deployable)
  kafka=true           add the Kafka gateway (ECS Fargate behind an NLB; its image is built
                       by `cdk deploy` with Docker from infra/kafka.Dockerfile)
  kafka_certificate=ARN  an ACM certificate: the gateway's listener is TLS

Synthesis makes no AWS calls. Building the Lambda asset runs pip against PyPI (no Docker).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "sdk"))
# aws-cdk-lib's Node runtime warns about Node 20's end of life on every run.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk

from infra import StreamletStack


def main() -> None:
    # Under the CDK CLI, CDK_OUTDIR is set; `python app.py` alone writes to ./cdk.out.
    app = cdk.App(outdir=None if "CDK_OUTDIR" in os.environ else "cdk.out")
    if str(app.node.try_get_context("bundle")).lower() == "false":
        app.node.set_context("aws:cdk:bundling-stacks", [])
    removal = cdk.RemovalPolicy.DESTROY if app.node.try_get_context("removal") == "destroy" \
        else cdk.RemovalPolicy.RETAIN
    StreamletStack(
        app, "Streamlet", prefix=app.node.try_get_context("prefix") or "streamlet",
        removal_policy=removal, alarm_email=app.node.try_get_context("alarm_email"),
        kafka=str(app.node.try_get_context("kafka")).lower() == "true",
        kafka_certificate_arn=app.node.try_get_context("kafka_certificate"),
        description="Streamlet: Kafka's model on DynamoDB, S3, Lambda and API Gateway",
        env=cdk.Environment(account=os.getenv("CDK_DEFAULT_ACCOUNT"),
                            region=os.getenv("CDK_DEFAULT_REGION")),
    )
    app.synth()


if __name__ == "__main__":
    main()
