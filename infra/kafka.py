"""The Kafka gateway on ECS Fargate behind a Network Load Balancer (``streamlet gateway``).

Stateless tasks (every partition's data and every group's state is in DynamoDB and S3), so
the service scales on CPU and any task serves any client: each advertises the load
balancer's name as the leader of every partition and the coordinator of every group.
Clients authenticate with SASL/OAUTHBEARER (a presigned ``sts:GetCallerIdentity``,
``streamlet.kafka.tokens``) and reach what their ``grant_*`` allows. With a certificate the
listener is TLS (the NLB terminates it, TLS 1.2+); without one it is plain TCP, for a VPC
whose network is trusted.

The image: by default built from ``infra/kafka.Dockerfile`` when ``cdk deploy`` publishes
the assets (Docker on the deploying machine); pass ``image=`` to use your own.

Example:
    >>> StreamletKafkaGateway(stack, "Kafka", platform=platform,
    ...                       certificate_arn="arn:aws:acm:...")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from streamlet.engine.grants import Grant, Resources, direct_statements, registry_path

from .checks import LOGS_DEFAULT_ENCRYPTION, acknowledge
from .platform import StreamletPlatform

KAFKA_PORT = 9092
ROOT = Path(__file__).resolve().parents[1]
_EXCLUDE = [".git", ".venv", "cdk.out", "node_modules", "tests", "bench", "docs",
            ".pytest_cache", ".mypy_cache", ".ruff_cache", "**/__pycache__"]


class StreamletKafkaGateway(Construct):
    """``desired_count`` Fargate tasks running ``streamlet gateway`` behind an NLB.

    Args:
        platform: the deployment the gateway serves.
        vpc: where the tasks and the load balancer run (default: a new 2-AZ VPC with one
            NAT gateway and flow logs).
        certificate_arn: an ACM certificate for a TLS listener (recommended).
        internet_facing: whether the load balancer is reachable from the internet.
        desired_count, min_count, max_count, cpu_target: the service and its autoscaling.
        cpu, memory_mib: each task's size.
        image: the container image (default: built from infra/kafka.Dockerfile at deploy).
    """

    def __init__(self, scope: Construct, construct_id: str, *, platform: StreamletPlatform,
                 vpc: ec2.IVpc | None = None, certificate_arn: str | None = None,
                 internet_facing: bool = False, desired_count: int = 2, min_count: int = 2,
                 max_count: int = 10, cpu_target: int = 60, cpu: int = 512,
                 memory_mib: int = 1024, image: ecs.ContainerImage | None = None,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.vpc = vpc or self._vpc(removal_policy, log_retention)
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self, "Nlb", vpc=self.vpc, internet_facing=internet_facing,
            cross_zone_enabled=True, deletion_protection=removal_policy == RemovalPolicy.RETAIN)
        self.cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                                   container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.task_role = self._task_role(platform)
        task = self._task(platform, image, cpu, memory_mib, log_retention, removal_policy)
        self.security_group = ec2.SecurityGroup(
            self, "Tasks", vpc=self.vpc, allow_all_outbound=False,
            description="Streamlet Kafka gateway tasks: Kafka in, HTTPS out")
        self.security_group.add_ingress_rule(ec2.Peer.ipv4(self.vpc.vpc_cidr_block),
                                             ec2.Port.tcp(KAFKA_PORT),
                                             "Kafka from the load balancer (in the VPC)")
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443),
                                            "DynamoDB, S3, STS, SSM, ECR over HTTPS")
        self.service = ecs.FargateService(
            self, "Service", cluster=self.cluster, task_definition=task,
            desired_count=desired_count, security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            platform_version=ecs.FargatePlatformVersion.LATEST, assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True))
        scaling = self.service.auto_scale_task_count(min_capacity=min_count,
                                                     max_capacity=max_count)
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=cpu_target)
        self._listener(certificate_arn)
        self._acknowledge(certificate_arn)

    @property
    def bootstrap(self) -> str:
        """``KAFKA_BOOTSTRAP_SERVERS`` for clients."""
        return f"{self.load_balancer.load_balancer_dns_name}:{KAFKA_PORT}"

    def _vpc(self, removal_policy: RemovalPolicy, retention: logs.RetentionDays) -> ec2.Vpc:
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=1,
                      restrict_default_security_group=False)
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=retention,
                                  removal_policy=removal_policy)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            flow_logs))
        return vpc

    def _task_role(self, platform: StreamletPlatform) -> iam.Role:
        """The engine's access (grant_admin's direct-mode statements: the gateway creates
        topics, writes and reads logs, groups and segments) and the grant registry."""
        storage = platform.storage
        role = iam.Role(self, "TaskRole",
                        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                        description="Streamlet Kafka gateway: the engine's tables and bucket, "
                                    "and reading the grant registry")
        arns = Resources(storage.topics_table.table_arn, storage.log_table.table_arn,
                         storage.groups_table.table_arn, storage.bucket.bucket_arn)
        for statement in direct_statements(Grant.admin(), arns):
            role.add_to_policy(iam.PolicyStatement(
                actions=statement["Action"], resources=_listed(statement["Resource"]),
                conditions=statement.get("Condition")))
        registry = Stack.of(self).format_arn(
            service="ssm", resource="parameter",
            resource_name=registry_path(storage.names.prefix).lstrip("/"))
        role.add_to_policy(iam.PolicyStatement(actions=["ssm:GetParametersByPath"],
                                               resources=[registry]))
        return role

    def _task(self, platform: StreamletPlatform, image: ecs.ContainerImage | None, cpu: int,
              memory_mib: int, retention: logs.RetentionDays,
              removal_policy: RemovalPolicy) -> ecs.FargateTaskDefinition:
        task = ecs.FargateTaskDefinition(self, "Task", cpu=cpu, memory_limit_mib=memory_mib,
                                         task_role=self.task_role)
        log_group = logs.LogGroup(self, "Logs", retention=retention,
                                  removal_policy=removal_policy)
        names = platform.storage.names
        command = ["gateway", "--endpoint", platform.direct_endpoint, "--port", str(KAFKA_PORT),
                   "--advertise", self.bootstrap, "--auth", "iam",
                   "--grants-path", registry_path(names.prefix)]
        task.add_container(
            "Gateway", image=image or ecs.ContainerImage.from_asset(
                str(ROOT), file="infra/kafka.Dockerfile", exclude=_EXCLUDE),
            command=command, readonly_root_filesystem=True, privileged=False,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="kafka", log_group=log_group),
            port_mappings=[ecs.PortMapping(container_port=KAFKA_PORT)],
            health_check=None)
        self._log_group = log_group
        return task

    def _listener(self, certificate_arn: str | None) -> None:
        options: dict[str, Any] = {"port": KAFKA_PORT}
        if certificate_arn:
            options.update(protocol=elbv2.Protocol.TLS,
                           certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                           ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS)
        else:
            options.update(protocol=elbv2.Protocol.TCP)
        listener = self.load_balancer.add_listener("Kafka", **options)
        listener.add_targets("Tasks", port=KAFKA_PORT, protocol=elbv2.Protocol.TCP,
                             targets=[self.service],
                             deregistration_delay=Duration.seconds(30),
                             health_check=elbv2.HealthCheck(protocol=elbv2.Protocol.TCP))

    def _acknowledge(self, certificate_arn: str | None) -> None:
        acknowledge(self._log_group, checkov={"CKV_AWS_158": LOGS_DEFAULT_ENCRYPTION})
        flow_logs = self.node.try_find_child("FlowLogs")
        if flow_logs is not None:
            acknowledge(flow_logs, checkov={"CKV_AWS_158": LOGS_DEFAULT_ENCRYPTION})
        acknowledge(self.task_role, children=True, nag={"AwsSolutions-IAM5": _OBJECT_PREFIXES},
                    nag_findings={"AwsSolutions-IAM5": [
                        {"regex": "/^Resource::<.+\\.Arn>\\/(blobs|segments)\\/\\*(\\/\\*)?$/"}]})
        acknowledge(self.security_group, nag={"AwsSolutions-EC23": _VPC_INGRESS})
        acknowledge(self.load_balancer, nag={"AwsSolutions-ELB2": _NLB_LOGS},
                    checkov={"CKV_AWS_91": _NLB_LOGS})
        if not certificate_arn:
            acknowledge(self.load_balancer, children=True,
                        checkov={"CKV_AWS_2": _PLAIN_LISTENER})


_OBJECT_PREFIXES = (
    "Object ARNs are scoped to the blobs/ and segments/ prefixes of the data bucket; keys "
    "are topic names and content hashes, so a prefix wildcard is the narrowest grant.")
_VPC_INGRESS = (
    "Ingress is the Kafka port from the VPC's own CIDR block only (where the load balancer "
    "forwards from); cdk-nag cannot resolve the CIDR token and reports it as unknown.")
_NLB_LOGS = (
    "Network Load Balancer access logs cover TLS listeners only and add a bucket; the "
    "gateway logs every refused authentication and the flow logs record connections.")
_PLAIN_LISTENER = (
    "Without certificate_arn the listener is plain TCP for a trusted private network; "
    "pass an ACM certificate to make it TLS, which the documentation recommends.")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
