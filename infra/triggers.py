"""Triggers and sinks on AWS: ``StreamletPlatform.add_trigger`` and ``add_*_sink``.

The first call creates :class:`StreamletTriggers`: the dispatcher function
(``functions.api.dispatcher_handler``), the streams it is woken by (the log table's,
``KEYS_ONLY``, and the groups table's, ``NEW_IMAGE``), an event source mapping on each
(filtered so only new batches of triggered topics and resets of trigger groups invoke it:
Lambda's reads of DynamoDB streams are not billed, so a quiet topic costs nothing), a
wake-up queue for batching windows and backoffs (with a dead-letter queue), and a custom
resource that activates the triggers at deploy (starting positions, backlog).

Least privilege, per trigger: the dispatcher may invoke exactly the bound functions; read
only the triggered topics' log items (``dynamodb:LeadingKeys``), blobs and segments; write
only the trigger groups' items; append only to the dead-letter topics; and write only the
sinks' bucket prefix, delivery stream, event bus and queue.

Example:
    >>> platform.add_trigger("orders", billing_fn, batch_size=100,
    ...                      on_failure="orders.dlq")                     # doctest: +SKIP
    >>> platform.add_s3_sink("orders", lake_bucket, prefix="raw/")        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from streamlet.engine import schema
from streamlet.engine.streams import GROUPS_VIEW, LOG_VIEW, log_filter, redrive_filter
from streamlet.triggers.config import Trigger

from .bundling import ARCHITECTURE, RUNTIME
from .checks import LOGS_DEFAULT_ENCRYPTION, acknowledge
from .functions import METRICS_NAMESPACE, SERVICE_NAME
from .monitoring import StreamletMonitoring
from .storage import StreamletStorage

MAX_ENVIRONMENT = 3_800  # Lambda allows 4 KB of environment in all
WINDOW = Duration.millis(500)  # Lambda's default for Kafka event sources
S3_WINDOW = Duration.minutes(1)  # fewer, larger objects
FIREHOSE_WINDOW = Duration.seconds(1)
_NAME = re.compile(r"[^A-Za-z0-9._-]")
_READ_LOG = ("dynamodb:GetItem", "dynamodb:Query")
_APPEND_LOG = ("dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem",
               "dynamodb:Query", "dynamodb:UpdateItem")
_GROUP = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")
_STREAM = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
           "dynamodb:ListStreams")

_RUNTIME_PIN = ("Python 3.13 is the newest runtime the bundled wheels and the test suite "
                "are pinned to; moving to 3.14 is a deliberate upgrade.")
_NO_DLQ = ("The dispatcher is invoked synchronously by its event source mappings, which retry "
           "a failed batch and then send it to the dispatcher's own dead-letter queue, and by "
           "CloudFormation for activation, which reports a failure to the deployment.")
_NO_VPC = ("The dispatcher reaches only DynamoDB, S3, Lambda, SQS, Firehose and EventBridge "
           "through public endpoints with IAM; a VPC would add NAT or endpoint cost and latency.")
_ENV_PLAIN = ("The environment holds the table prefix, bucket name, trigger settings, function "
              "ARNs and the wake-up queue URL, no secrets, so a customer managed key adds nothing.")
_CONCURRENCY = ("Reserved concurrency would cap deliveries for every trigger at once; the event "
                "source mappings already run one invocation per stream shard at a time.")
_XRAY = ("X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
         "permissions, so active tracing requires Resource star here.")
_LAST_STOP = ("This queue is itself the dead-letter queue of the wake-ups and of the stream "
              "mappings; an alarm fires on its first message, and a further dead-letter queue "
              "would only hold the same messages again.")
_SQS_MAPPING = ("An SQS event source mapping has no on-failure destination: the wake-up "
                "queue's own redrive policy moves a message that keeps failing to the "
                "dispatcher's dead-letter queue after five receives.")
_PREFIXES = ("Object ARNs are scoped to each triggered topic's blobs/ and segments/ prefixes, "
             "the dead-letter topics' blobs/ prefixes and each S3 sink's topic prefix: object "
             "keys are generated per batch, so a prefix wildcard is the narrowest grant.")


def trigger_name(topic: str, target: str) -> str:
    """A default trigger name: ``{topic}.{target}``, in the name alphabet, 64 at most.

    Example:
        >>> trigger_name("orders", "Billing/Fn")
        'orders.Billing-Fn'
    """
    return _NAME.sub("-", f"{topic}.{target}")[:64]


def _millis(duration: Duration | None) -> int:
    return -1 if duration is None else int(duration.to_milliseconds())


class StreamletTriggers(Construct):
    """The dispatcher and what wakes it (see the module docstring); one per platform."""

    def __init__(self, scope: Construct, construct_id: str, *, storage: StreamletStorage,
                 code: lambda_.Code, monitoring: StreamletMonitoring,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.storage = storage
        self.settings: list[dict[str, Any]] = []
        self._topics: set[str] = set()
        self._groups: set[str] = set()
        self._windows: list[int] = []
        log_stream, groups_stream = (self._stream(storage.log_table, LOG_VIEW),
                                     self._stream(storage.groups_table, GROUPS_VIEW))
        self.dead = sqs.Queue(self, "DeadLetters", enforce_ssl=True,
                              encryption=sqs.QueueEncryption.KMS_MANAGED,
                              retention_period=Duration.days(14))
        acknowledge(self.dead, nag={"Serverless-SQSRedrivePolicy": _LAST_STOP})
        self.wakeups = sqs.Queue(self, "Wakeups", enforce_ssl=True,
                                 encryption=sqs.QueueEncryption.KMS_MANAGED,
                                 visibility_timeout=Duration.minutes(16),
                                 dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead,
                                                                       max_receive_count=5))
        self.function = self._function(code, log_retention, removal_policy)
        self.role = self.function.role
        assert isinstance(self.role, iam.Role)
        for arn in (log_stream, groups_stream):
            self.role.add_to_policy(iam.PolicyStatement(actions=list(_STREAM), resources=[arn]))
        self.log_mapping = self._mapping("LogStream", log_stream)
        self.groups_mapping = self._mapping("GroupsStream", groups_stream)
        self.function.add_event_source(sources.SqsEventSource(self.wakeups, batch_size=10))
        for child in self.function.node.children:
            if child.node.id.startswith("SqsEventSource:"):
                acknowledge(child, nag={
                    "Serverless-LambdaEventSourceMappingDestination": _SQS_MAPPING})
        self.dead.grant_send_messages(self.function)
        self.wakeups.grant_send_messages(self.function)
        self.activation = CustomResource(self, "Activation",
                                         service_token=self.function.function_arn,
                                         resource_type="Custom::StreamletTriggers")
        self._alarms(monitoring)

    # ---- construction ---------------------------------------------------------------------

    def _stream(self, table: dynamodb.Table, view: str) -> str:
        cfn = table.node.default_child
        assert isinstance(cfn, dynamodb.CfnTable)
        cfn.stream_specification = dynamodb.CfnTable.StreamSpecificationProperty(
            stream_view_type=view)
        return cfn.attr_stream_arn

    def _function(self, code: lambda_.Code, retention: logs.RetentionDays,
                  removal_policy: RemovalPolicy) -> lambda_.Function:
        log_group = logs.LogGroup(self, "DispatcherLogs", retention=retention,
                                  removal_policy=removal_policy)
        acknowledge(log_group, checkov={"CKV_AWS_158": LOGS_DEFAULT_ENCRYPTION})
        role = iam.Role(self, "DispatcherRole",
                        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Streamlet trigger dispatcher: only the bound functions, "
                                    "topics, groups and sinks")
        log_group.grant_write(role)
        names = self.storage.names
        function = lambda_.Function(
            self, "Dispatcher", runtime=RUNTIME, architecture=ARCHITECTURE, code=code,
            handler="functions.api.dispatcher_handler", role=role, memory_size=1024,
            timeout=Duration.minutes(15), tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            description="Streamlet triggers: delivers topics to functions and sinks",
            environment={"STREAMLET_TABLE_PREFIX": names.prefix,
                         "STREAMLET_BUCKET": self.storage.bucket.bucket_name,
                         "STREAMLET_WAKEUP_QUEUE": self.wakeups.queue_url,
                         "STREAMLET_TRIGGERS": "[]",
                         "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                         "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE})
        acknowledge(function, nag={
            "AwsSolutions-L1": _RUNTIME_PIN, "Serverless-LambdaLatestVersion": _RUNTIME_PIN,
            "Serverless-LambdaDLQ": _NO_DLQ,
        }, checkov={"CKV_AWS_115": _CONCURRENCY, "CKV_AWS_116": _NO_DLQ,
                    "CKV_AWS_117": _NO_VPC, "CKV_AWS_173": _ENV_PLAIN})
        acknowledge(role, children=True, nag={"AwsSolutions-IAM5": f"{_XRAY} {_PREFIXES}"},
                    nag_findings={"AwsSolutions-IAM5": [
                        "Resource::*", {"regex": "/^Resource::<.+\\.Arn>\\/.*\\*$/"}]})
        return function

    def _mapping(self, construct_id: str, stream_arn: str) -> lambda_.EventSourceMapping:
        """A stream mapping: from now on, retried until it succeeds (sessions are
        idempotent), a batch Lambda gives up on recorded in the dispatcher's dead letters."""
        return lambda_.EventSourceMapping(
            self, construct_id, target=self.function, event_source_arn=stream_arn,
            starting_position=lambda_.StartingPosition.LATEST, batch_size=1000,
            retry_attempts=10_000, max_record_age=Duration.days(1), parallelization_factor=1,
            on_failure=sources.SqsDlq(self.dead))

    def _alarms(self, monitoring: StreamletMonitoring) -> None:
        five = Duration.minutes(5)
        for construct_id, metric, description in (
                ("DispatcherErrors", self.function.metric_errors(period=five),
                 "The trigger dispatcher failed (its event source mappings retry)"),
                ("DispatcherThrottles", self.function.metric_throttles(period=five),
                 "The trigger dispatcher was throttled"),
                ("DispatcherDeadLetters",
                 self.dead.metric_approximate_number_of_messages_visible(period=five),
                 "Stream batches or wake-ups the dispatcher gave up on: deliveries wait for "
                 "the next append to their partitions")):
            alarm = cw.Alarm(self, construct_id, metric=metric, threshold=1,
                             evaluation_periods=1, alarm_description=description,
                             comparison_operator=cw.ComparisonOperator
                             .GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
            if monitoring.topic is not None:
                alarm.add_alarm_action(cw_actions.SnsAction(monitoring.topic))
            monitoring.alarms.append(alarm)

    # ---- triggers and sinks ---------------------------------------------------------------

    def add(self, settings: dict[str, Any]) -> None:
        """Deliver one more trigger (``streamlet.triggers.Trigger`` settings as JSON)."""
        if any(s["name"] == settings["name"] for s in self.settings):
            raise ValueError(f"A trigger named {settings['name']!r} exists already.")
        self.settings.append(settings)
        topic = settings["topic"]
        self._topics.add(topic)
        self._groups.add(settings.get("group_id") or settings["name"])
        self._windows.append(settings.get("maximum_batching_window_ms", 500))
        self._grant_read(topic, settings.get("group_id") or settings["name"])
        failure = settings.get("on_failure") or {}
        if failure.get("kind") == "topic":
            self._grant_append(failure["topic"])
        self._render()

    def _render(self) -> None:
        stack = Stack.of(self)
        text = stack.to_json_string(self.settings)
        if len(str(self.settings)) + 80 * len(self.settings) > MAX_ENVIRONMENT:
            raise ValueError(f"{len(self.settings)} triggers do not fit one dispatcher's "
                             "4 KB Lambda environment; use fewer, or split platforms.")
        self.function.add_environment("STREAMLET_TRIGGERS", text)
        for mapping, pattern in ((self.log_mapping, log_filter(self._topics)),
                                 (self.groups_mapping, redrive_filter(self._groups))):
            cfn = mapping.node.default_child
            assert isinstance(cfn, lambda_.CfnEventSourceMapping)
            cfn.filter_criteria = lambda_.CfnEventSourceMapping.FilterCriteriaProperty(
                filters=[lambda_.CfnEventSourceMapping.FilterProperty(
                    pattern=stack.to_json_string(pattern))])
        log = self.log_mapping.node.default_child
        assert isinstance(log, lambda_.CfnEventSourceMapping)
        # the smallest window, rounded up: the mapping gathers the signals, so sessions
        # find batches already old enough and the dispatcher is not billed for waiting
        log.maximum_batching_window_in_seconds = min(300, math.ceil(min(self._windows) / 1000))
        self.activation.node.default_child.add_property_override(  # type: ignore[union-attr]
            "Version", hashlib.sha256(str(self.settings).encode()).hexdigest()[:16])

    def _statement(self, actions: tuple[str, ...], resources: list[str],
                   leading: str | None = None) -> None:
        conditions = None if leading is None else {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [leading]},
            "Null": {"dynamodb:LeadingKeys": "false"}}
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=list(actions), resources=resources, conditions=conditions))

    def _grant_read(self, topic: str, group: str) -> None:
        """Read the topic (both tiers, committed transactions only), commit to the group."""
        storage = self.storage
        self._statement(("dynamodb:GetItem",), [storage.topics_table.table_arn],
                        schema.topic_item_pattern(topic))
        self._statement(_READ_LOG, [storage.log_table.table_arn], schema.log_pk_pattern(topic))
        self._statement(_GROUP, [storage.groups_table.table_arn], schema.group_pk(group))
        # read_committed: a transactional batch is returned once its transaction record
        # says committed (read only, as a direct consume grant reads them)
        self._statement(("dynamodb:GetItem",), [storage.groups_table.table_arn],
                        schema.txn_pk_pattern("*"))
        blobs, segments = schema.object_patterns(topic)
        self._statement(("s3:GetObject",), [storage.bucket.arn_for_objects(blobs),
                                            storage.bucket.arn_for_objects(segments)])

    def _grant_append(self, topic: str) -> None:
        """Append dead letters to ``topic`` (idempotently: a producer id)."""
        storage = self.storage
        self._statement(("dynamodb:GetItem",), [storage.topics_table.table_arn],
                        schema.topic_item_pattern(topic))
        self._statement(("dynamodb:UpdateItem",), [storage.topics_table.table_arn],
                        schema.PRODUCER_ID_COUNTER)
        self._statement(_APPEND_LOG, [storage.log_table.table_arn],
                        schema.log_pk_pattern(topic))
        blobs, _ = schema.object_patterns(topic)
        self._statement(("s3:PutObject",), [storage.bucket.arn_for_objects(blobs)])

    def allow(self, actions: list[str], resources: list[str]) -> None:
        """Let the dispatcher call a target (a function, a sink's destination)."""
        self.function.add_to_role_policy(iam.PolicyStatement(actions=actions,
                                                             resources=resources))


class TriggerMethods:
    """``add_trigger`` and the sinks, mixed into ``StreamletPlatform``."""

    storage: StreamletStorage
    monitoring: StreamletMonitoring
    node: Any
    _trigger_code: lambda_.Code
    _trigger_logs: logs.RetentionDays
    _trigger_removal: RemovalPolicy

    @property
    def triggers(self) -> StreamletTriggers:
        """The dispatcher and its wiring (made by the first trigger or sink)."""
        found = self.node.try_find_child("Triggers")
        if found is None:
            found = StreamletTriggers(self, "Triggers",  # type: ignore[arg-type]
                                      storage=self.storage, code=self._trigger_code,
                                      monitoring=self.monitoring,
                                      log_retention=self._trigger_logs,
                                      removal_policy=self._trigger_removal)
        assert isinstance(found, StreamletTriggers)
        return found

    def add_trigger(self, topic: str, function: lambda_.IFunction, *, name: str | None = None,
                    group_id: str | None = None, batch_size: int = 100,
                    maximum_batching_window: Duration = WINDOW,
                    starting_position: lambda_.StartingPosition | str = "LATEST",
                    starting_position_timestamp: datetime | None = None,
                    bisect_batch_on_function_error: bool = False,
                    maximum_retry_attempts: int = -1,
                    maximum_record_age: Duration | None = None,
                    report_batch_item_failures: bool = False,
                    on_failure: str | sqs.IQueue | None = None,
                    key_filter: str | None = None) -> dict[str, Any]:
        """Invoke ``function`` with ``topic``'s records, as Lambda's Kafka event source
        mapping would (the same settings; ``on_failure`` is a dead-letter topic name or an
        SQS queue). Returns the trigger's settings (what the dispatcher runs)."""
        settings: dict[str, Any] = {
            "name": name or trigger_name(topic, function.node.id), "topic": topic,
            "function": function.function_arn, "batch_size": batch_size,
            "maximum_batching_window_ms": _millis(maximum_batching_window),
            "starting_position": starting_position if isinstance(starting_position, str)
            else str(starting_position.value),
            "bisect_batch_on_function_error": bisect_batch_on_function_error,
            "maximum_retry_attempts": maximum_retry_attempts,
            "maximum_record_age_s": _millis(maximum_record_age) // 1000
            if maximum_record_age else -1,
            "report_batch_item_failures": report_batch_item_failures}
        if group_id:
            settings["group_id"] = group_id
        if starting_position_timestamp is not None:
            settings["starting_position_timestamp_ms"] = int(
                starting_position_timestamp.timestamp() * 1000)
        if key_filter:
            settings["key_filter"] = key_filter
        self._failure(settings, on_failure)
        triggers = self.triggers
        triggers.allow(["lambda:InvokeFunction"], [function.function_arn])
        triggers.add(_checked(settings))
        return settings

    def _failure(self, settings: dict[str, Any], on_failure: str | sqs.IQueue | None) -> None:
        if isinstance(on_failure, str):
            settings["on_failure"] = {"kind": "topic", "topic": on_failure}
        elif on_failure is not None:
            settings["on_failure"] = {"kind": "sqs", "queue_url": on_failure.queue_url}
            on_failure.grant_send_messages(self.triggers.function)

    def _sink(self, topic: str, sink: dict[str, Any], name: str, dead_letter_topic: str | None,
              batch_size: int, window: Duration, starting_position: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "name": name, "topic": topic, "sink": sink, "batch_size": batch_size,
            "maximum_batching_window_ms": _millis(window),
            "starting_position": starting_position}
        self._failure(settings, dead_letter_topic)
        self.triggers.add(_checked(settings))
        return settings

    def add_s3_sink(self, topic: str, bucket: s3.IBucket, *, prefix: str = "",
                    name: str | None = None, dead_letter_topic: str | None = None,
                    batch_size: int = 10_000, maximum_batching_window: Duration = S3_WINDOW,
                    starting_position: str = "TRIM_HORIZON"
                    ) -> dict[str, Any]:
        """Deliver ``topic`` into ``bucket`` as gzip NDJSON objects under
        ``{prefix}{topic}/dt=.../partition=.../`` (Athena-readable; see docs)."""
        self.triggers.allow(["s3:PutObject"], [bucket.arn_for_objects(f"{prefix}{topic}/*")])
        return self._sink(topic, {"kind": "s3", "bucket": bucket.bucket_name, "prefix": prefix},
                          name or trigger_name(topic, "s3"), dead_letter_topic, batch_size,
                          maximum_batching_window, starting_position)

    def add_firehose_sink(self, topic: str, delivery_stream_name: str, *,
                          name: str | None = None, dead_letter_topic: str | None = None,
                          batch_size: int = 500,
                          maximum_batching_window: Duration = FIREHOSE_WINDOW,
                          starting_position: str = "TRIM_HORIZON"
                          ) -> dict[str, Any]:
        """Deliver ``topic`` into a Firehose stream (one JSON line per record)."""
        arn = Stack.of(self.triggers).format_arn(
            service="firehose", resource="deliverystream", resource_name=delivery_stream_name)
        self.triggers.allow(["firehose:PutRecordBatch"], [arn])
        return self._sink(topic, {"kind": "firehose", "delivery_stream": delivery_stream_name},
                          name or trigger_name(topic, "firehose"), dead_letter_topic,
                          batch_size, maximum_batching_window, starting_position)

    def add_eventbridge_sink(self, topic: str, event_bus: events.IEventBus | None = None, *,
                             source: str = "streamlet", detail_type: str = "Streamlet Record",
                             name: str | None = None, dead_letter_topic: str | None = None,
                             batch_size: int = 100, maximum_batching_window: Duration = WINDOW,
                             starting_position: str = "TRIM_HORIZON"
                             ) -> dict[str, Any]:
        """Put ``topic``'s records on an event bus (default: the account's default bus)."""
        bus = event_bus or events.EventBus.from_event_bus_name(
            self.triggers, f"Bus{len(self.triggers.settings)}", "default")
        self.triggers.allow(["events:PutEvents"], [bus.event_bus_arn])
        return self._sink(topic, {"kind": "eventbridge", "event_bus": bus.event_bus_name,
                                  "source": source, "detail_type": detail_type},
                          name or trigger_name(topic, "eventbridge"), dead_letter_topic,
                          batch_size, maximum_batching_window, starting_position)

    def add_sqs_sink(self, topic: str, queue: sqs.IQueue, *, body: str = "envelope",
                     name: str | None = None, dead_letter_topic: str | None = None,
                     batch_size: int = 100, maximum_batching_window: Duration = WINDOW,
                     starting_position: str = "TRIM_HORIZON"
                     ) -> dict[str, Any]:
        """Send ``topic``'s records to ``queue`` (a FIFO queue: grouped by key)."""
        queue.grant_send_messages(self.triggers.function)
        return self._sink(topic, {"kind": "sqs", "queue_url": queue.queue_url, "body": body},
                          name or trigger_name(topic, "sqs"), dead_letter_topic, batch_size,
                          maximum_batching_window, starting_position)


PLACEHOLDER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:placeholder"
PLACEHOLDER_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/placeholder"


def _checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings the dispatcher will accept, checked at synth by the class it reads them with
    (CDK tokens stand in for ARNs and queue URLs until deployment: placeholders here)."""
    probe = dict(settings)
    if "function" in probe:
        probe["function"] = PLACEHOLDER_ARN
    if (probe.get("on_failure") or {}).get("kind") == "sqs":
        probe["on_failure"] = {"kind": "sqs", "queue_url": PLACEHOLDER_QUEUE}
    Trigger.from_json(probe)  # InvalidConfig (a ValueError-like error) names what is wrong
    return dict(settings)
