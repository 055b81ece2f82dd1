"""The HTTP API: every route IAM (SigV4) authorized, explicit throttling, JSON access logs."""

from __future__ import annotations

import json
from collections.abc import Mapping

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .checks import LOGS_DEFAULT_ENCRYPTION, acknowledge

GET, POST, ANY = apigw.HttpMethod.GET, apigw.HttpMethod.POST, apigw.HttpMethod.ANY
PUT, DELETE = apigw.HttpMethod.PUT, apigw.HttpMethod.DELETE

# (function, method, path): the contract with functions/api.py. The most specific route
# wins in API Gateway, so the two catch-alls only take what nothing else matches.
ROUTES: tuple[tuple[str, apigw.HttpMethod, str], ...] = (
    ("produce", POST, "/v3/clusters/{cluster_id}/topics/{topic}/records"),
    ("produce", POST, "/v3/clusters/{cluster_id}/topics/{topic}/records:batch"),
    ("produce", POST, "/v1/topics/{topic}/partitions/{partition}/batches"),
    ("produce", POST, "/v1/producer-ids"),
    ("produce", POST, "/v1/transactions/{transactional_id}/init"),
    ("produce", POST, "/v1/transactions/{transactional_id}/begin"),
    ("produce", POST, "/v1/transactions/{transactional_id}/{number}/commit"),
    ("produce", POST, "/v1/transactions/{transactional_id}/{number}/abort"),
    ("consume", GET, "/v1/topics/{topic}/partitions/{partition}/batches"),
    ("consume", GET, "/v1/topics/{topic}/partitions/{partition}/offsets"),
    ("consume", GET, "/v1/topics/{topic}"),
    ("consume", GET, "/v1/groups/{group}"),
    ("consume", GET, "/v1/groups/{group}/leases/{topic}/{partition}"),
    ("consume", POST, "/v1/groups/{group}/leases"),
    ("consume", POST, "/v1/groups/{group}/leases/{topic}/{partition}/take"),
    ("consume", POST, "/v1/groups/{group}/leases/{topic}/{partition}/release"),
    ("consume", POST, "/v1/groups/{group}/members/heartbeat"),
    ("consume", POST, "/v1/groups/{group}/members/remove"),
    ("consume", POST, "/v1/groups/{group}/commits"),
    ("consume", ANY, "/consumers/{proxy+}"),
    ("admin", ANY, "/v3/{proxy+}"),
    ("archiver", POST, "/v1/archive"),
    ("archiver", POST, "/v1/retention"),
    ("archiver", POST, "/v1/topics/{topic}/partitions/{partition}/delete-records"),
    ("admin", GET, "/v1/groups"),
    ("admin", PUT, "/v1/groups/{group}/offsets"),
    ("admin", DELETE, "/v1/groups/{group}"),
    ("admin", GET, "/v1/transactions"),
    ("admin", GET, "/v1/deployment"),
)

# HTTP API access-log variables (one JSON object per request).
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "requestTime": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp", "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn", "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey", "path": "$context.path", "status": "$context.status",
    "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` is a jsii interface, so Python passes an object, not a dict."""

    def __init__(self, destination: apigw.IAccessLogDestination,
                 log_format: apigw_v1.AccessLogFormat) -> None:
        self._destination, self._format = destination, log_format

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


class StreamletApi(Construct):
    """An HTTP API routing to the produce, consume and admin functions.

    Args:
        functions: ``{"produce": fn, "consume": fn, "admin": fn}``.
        throttling_rate_limit / throttling_burst_limit: the default stage's token bucket.
        log_retention: how long access logs are kept.
        removal_policy: what happens to the access-log group when the stack is deleted.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 functions: Mapping[str, lambda_.IFunction], throttling_rate_limit: int,
                 throttling_burst_limit: int, log_retention: logs.RetentionDays,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.http_api = apigw.HttpApi(self, "Http", create_default_stage=False,
                                      description="Streamlet: Kafka's model over HTTP")
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention,
                                         removal_policy=removal_policy)
        acknowledge(self.access_logs, checkov={"CKV_AWS_158": LOGS_DEFAULT_ENCRYPTION})
        self.stage = apigw.HttpStage(
            self, "DefaultStage", http_api=self.http_api, auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=throttling_rate_limit,
                                            burst_limit=throttling_burst_limit),
            access_log_settings=_AccessLogSettings(
                apigw.LogGroupLogDestination(self.access_logs),
                apigw_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))))
        self.routes = self._routes(functions)

    @property
    def url(self) -> str:
        """The endpoint clients use: ``https://{api-id}.execute-api.{region}.amazonaws.com``."""
        return self.http_api.api_endpoint

    def execute_api_arn(self, method: str, path: str) -> str:
        """``execute-api:Invoke`` resource for ``method`` (or ``*``) on ``path`` (any stage)."""
        return self.http_api.arn_for_execute_api(method, path, "*")

    def _routes(self, functions: Mapping[str, lambda_.IFunction]) -> list[apigw.HttpRoute]:
        iam = authorizers.HttpIamAuthorizer()
        targets = {name: integrations.HttpLambdaIntegration(
            f"{name.title()}Integration", fn,
            payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0)
            for name, fn in functions.items()}
        return [route for name, method, path in ROUTES
                for route in self.http_api.add_routes(
                    path=path, methods=[method], integration=targets[name], authorizer=iam)]
