"""The stack ``app.py`` deploys: one :class:`StreamletPlatform` and the outputs clients need."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .kafka import StreamletKafkaGateway
from .platform import StreamletPlatform


class StreamletStack(Stack):
    """Streamlet's storage, functions, HTTP API and monitoring, with endpoint outputs.

    Other keyword arguments are the stack's own (``env``, ``description``, ...); to tune
    throttling, retention or concurrency, put a :class:`StreamletPlatform` in your stack.
    ``kafka=True`` adds the Kafka gateway (ECS Fargate behind an NLB; TLS with
    ``kafka_certificate_arn``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str = "streamlet",
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 alarm_email: str | None = None, code: lambda_.Code | None = None,
                 kafka: bool = False, kafka_certificate_arn: str | None = None,
                 kafka_image: ecs.ContainerImage | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = StreamletPlatform(self, "Streamlet", prefix=prefix,
                                          removal_policy=removal_policy,
                                          alarm_email=alarm_email, code=code)
        self.kafka = StreamletKafkaGateway(
            self, "Kafka", platform=self.platform, certificate_arn=kafka_certificate_arn,
            image=kafka_image, removal_policy=removal_policy) if kafka else None
        self._outputs()

    def _outputs(self) -> None:
        platform, names = self.platform, self.platform.storage.names
        CfnOutput(self, "ApiEndpoint", value=platform.api_url,
                  description="STREAMLET_ENDPOINT for the SDK and CLI over HTTPS (SigV4)")
        CfnOutput(self, "DirectEndpoint", value=platform.direct_endpoint,
                  description="STREAMLET_ENDPOINT for the SDK and CLI (direct mode)")
        CfnOutput(self, "TopicsTable", value=names.topics_table)
        CfnOutput(self, "LogTable", value=names.log_table)
        CfnOutput(self, "GroupsTable", value=names.groups_table)
        CfnOutput(self, "DataBucket", value=platform.storage.bucket.bucket_name)
        CfnOutput(self, "Dashboard", value=platform.monitoring.dashboard.dashboard_name)
        if self.kafka is not None:
            CfnOutput(self, "KafkaBootstrap", value=self.kafka.bootstrap,
                      description="KAFKA_BOOTSTRAP_SERVERS for Kafka clients (SASL/OAUTHBEARER)")
        if platform.monitoring.topic:
            CfnOutput(self, "AlarmTopic", value=platform.monitoring.topic.topic_arn)
