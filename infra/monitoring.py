"""Alarms and a dashboard: function errors and throttles, DynamoDB throttles, API 5xx,
and the archiver's lag.

Alarms notify an encrypted SNS topic when an e-mail address is given; without one they
still show on the dashboard and in the CloudWatch console.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .checks import acknowledge
from .functions import ARCHIVE_EVERY, METRICS_NAMESPACE, SERVICE_NAME

PERIOD = Duration.minutes(5)
DAY_S = 86_400
ARCHIVE_LAG_ALARM = Duration.hours(6)
"""Default lag alarm: hot batches expire a day after append by default
(``local.retention.ms``), so this leaves 18 hours to repair the archiver."""


def _sum(metric: cw.Metric) -> cw.Metric:
    return metric.with_(statistic="Sum", period=PERIOD)


class StreamletMonitoring(Construct):
    """One alarm per failure signal, and a dashboard that shows them with the traffic.

    Args:
        functions: the functions by name.
        tables: the DynamoDB tables by name.
        api: the HTTP API.
        alarm_email: if given, alarms publish to an encrypted SNS topic with this
            e-mail subscription.
        archive_every: how often the archiver's scheduled pass runs.
        archive_lag_alarm: alarm when the oldest batch not yet archived is this old, or
            when no pass has reported for three schedule periods. Keep it above the
            largest ``segment.ms`` and well below the smallest ``local.retention.ms``.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 functions: Mapping[str, lambda_.Function],
                 tables: Mapping[str, dynamodb.Table], api: apigw.HttpApi,
                 alarm_email: str | None = None, archive_every: Duration = ARCHIVE_EVERY,
                 archive_lag_alarm: Duration = ARCHIVE_LAG_ALARM) -> None:
        if not 60 <= archive_every.to_seconds() <= DAY_S:  # before any construct is made
            raise ValueError(f"archive_every={archive_every.to_human_string()}: it must be "
                             "from 1 minute to 1 day (hot batches expire local.retention.ms, "
                             "1 day by default, after they are appended).")
        super().__init__(scope, construct_id)
        self.topic = self._topic(alarm_email) if alarm_email else None
        self.alarms: list[cw.Alarm] = []
        for name, fn in functions.items():
            self._alarm(f"{name.title()}Errors", _sum(fn.metric_errors()),
                        f"Streamlet {name} function raised errors")
            self._alarm(f"{name.title()}Throttles", _sum(fn.metric_throttles()),
                        f"Streamlet {name} function was throttled")
        for name, table in tables.items():
            self._alarm(f"{_short(name)}Throttles", _throttle_events(table),
                        f"DynamoDB throttled requests on {name}")
        self._alarm("Api5xx", _sum(api.metric_server_error()),
                    "The HTTP API answered with 5xx (handlers map bad input to 4xx)")
        self.archive_lag = archive_lag_metric(archive_every)
        periods = min(3, int(DAY_S // archive_every.to_seconds()))
        self._alarm("ArchiveLag", self.archive_lag, (
            f"The oldest batch not yet archived to S3 is {archive_lag_alarm.to_human_string()} "
            "old, or no archiver pass reported: hot batches expire local.retention.ms after "
            "they are appended, archived or not"),
            threshold=archive_lag_alarm.to_seconds(), periods=periods,
            missing=cw.TreatMissingData.BREACHING)
        self.dashboard = self._dashboard(functions, tables, api)

    def _alarm(self, construct_id: str, metric: cw.IMetric, description: str, *,
               threshold: float = 1, periods: int = 1,
               missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING) -> None:
        alarm = cw.Alarm(
            self, construct_id, metric=metric, threshold=threshold, evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=missing, alarm_description=description)
        if self.topic:
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def _topic(self, email: str) -> sns.Topic:
        key = kms.Key(self, "AlarmKey", enable_key_rotation=True,
                      description="Encrypts Streamlet's alarm topic")
        # CloudWatch publishes alarm notifications into the encrypted topic.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                  "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True,
                          display_name="Streamlet alarms")
        subscription = topic.add_subscription(subscriptions.EmailSubscription(email))
        acknowledge(subscription, nag={"Serverless-SNSRedrivePolicy": (
            "The only subscription is an e-mail address; an undeliverable alarm e-mail "
            "leaves the alarm in ALARM state on the dashboard, so a dead-letter queue "
            "would hold notifications nobody reads.")})
        return topic

    def _dashboard(self, functions: Mapping[str, lambda_.Function],
                   tables: Mapping[str, dynamodb.Table], api: apigw.HttpApi) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dashboard.add_widgets(
            _graph("API requests", [_sum(api.metric_count())]),
            _graph("API errors", [_sum(api.metric_client_error()),
                                  _sum(api.metric_server_error())]),
            _graph("API latency p99", [api.metric_latency(statistic="p99", period=PERIOD)]),
            _graph("Archive lag (s): oldest batch not yet in S3", [self.archive_lag]))
        for name, fn in functions.items():
            dashboard.add_widgets(
                _graph(f"{name}: invocations, errors, throttles",
                       [_sum(fn.metric_invocations()), _sum(fn.metric_errors()),
                        _sum(fn.metric_throttles())]),
                _graph(f"{name}: duration p99",
                       [fn.metric_duration(statistic="p99", period=PERIOD)]))
        for name, table in tables.items():
            dashboard.add_widgets(
                _graph(f"{name}: consumed capacity",
                       [_sum(table.metric_consumed_read_capacity_units()),
                        _sum(table.metric_consumed_write_capacity_units())]),
                _graph(f"{name}: throttle events", [_throttle_events(table)]))
        return dashboard


def archive_lag_metric(archive_every: Duration = ARCHIVE_EVERY) -> cw.Metric:
    """``ArchiveLagSeconds``, which every scheduled archiver pass publishes (Powertools
    embedded metric format, namespace ``Streamlet``, dimension ``service``)."""
    return cw.Metric(namespace=METRICS_NAMESPACE, metric_name="ArchiveLagSeconds",
                     dimensions_map={"service": SERVICE_NAME}, statistic="Maximum",
                     period=archive_every)


def _throttle_events(table: dynamodb.Table) -> cw.MathExpression:
    return cw.MathExpression(
        expression="reads + writes", label="ReadThrottleEvents + WriteThrottleEvents",
        period=PERIOD, using_metrics={
            "reads": _sum(table.metric("ReadThrottleEvents")),
            "writes": _sum(table.metric("WriteThrottleEvents"))})


def _graph(title: str, metrics: list[cw.IMetric]) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=metrics, width=12)


def _short(table_name: str) -> str:
    return table_name.rsplit("-", 1)[-1].title()
