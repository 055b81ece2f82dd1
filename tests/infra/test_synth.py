"""The synthesized template: storage from the schema module, functions, API, monitoring."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk.assertions import Match, Template

from infra.monitoring import StreamletMonitoring
from streamlet.engine import schema

from .conftest import PREFIX, Synthesized

# The contract with functions/api.py: route key -> handler.
CONTRACT = {
    "POST /v3/clusters/{cluster_id}/topics/{topic}/records": "functions.api.produce_handler",
    "POST /v3/clusters/{cluster_id}/topics/{topic}/records:batch":
        "functions.api.produce_handler",
    "POST /v1/topics/{topic}/partitions/{partition}/batches": "functions.api.produce_handler",
    "POST /v1/producer-ids": "functions.api.produce_handler",
    "POST /v1/transactions/{transactional_id}/init": "functions.api.produce_handler",
    "POST /v1/transactions/{transactional_id}/begin": "functions.api.produce_handler",
    "POST /v1/transactions/{transactional_id}/{number}/commit": "functions.api.produce_handler",
    "POST /v1/transactions/{transactional_id}/{number}/abort": "functions.api.produce_handler",
    "GET /v1/topics/{topic}/partitions/{partition}/batches": "functions.api.consume_handler",
    "GET /v1/topics/{topic}/partitions/{partition}/offsets": "functions.api.consume_handler",
    "GET /v1/topics/{topic}": "functions.api.consume_handler",
    "GET /v1/groups/{group}": "functions.api.consume_handler",
    "GET /v1/groups/{group}/leases/{topic}/{partition}": "functions.api.consume_handler",
    "POST /v1/groups/{group}/leases": "functions.api.consume_handler",
    "POST /v1/groups/{group}/leases/{topic}/{partition}/take": "functions.api.consume_handler",
    "POST /v1/groups/{group}/leases/{topic}/{partition}/release":
        "functions.api.consume_handler",
    "POST /v1/groups/{group}/members/heartbeat": "functions.api.consume_handler",
    "POST /v1/groups/{group}/members/remove": "functions.api.consume_handler",
    "POST /v1/groups/{group}/commits": "functions.api.consume_handler",
    "ANY /consumers/{proxy+}": "functions.api.consume_handler",
    "ANY /v3/{proxy+}": "functions.api.admin_handler",
    "POST /v1/archive": "functions.api.archiver_handler",
    "POST /v1/retention": "functions.api.archiver_handler",
    "POST /v1/topics/{topic}/partitions/{partition}/delete-records":
        "functions.api.archiver_handler",
    "GET /v1/groups": "functions.api.admin_handler",
    "PUT /v1/groups/{group}/offsets": "functions.api.admin_handler",
    "DELETE /v1/groups/{group}": "functions.api.admin_handler",
    "GET /v1/transactions": "functions.api.admin_handler",
    "GET /v1/deployment": "functions.api.admin_handler",
}
API_TIMEOUT_S = 30


def _ref(value: dict[str, Any]) -> str:
    return value.get("Ref") or value["Fn::GetAtt"][0]


# ---- storage -------------------------------------------------------------------------


def test_tables_match_the_schema_module(synthesized: Synthesized) -> None:
    names = schema.Names(prefix=PREFIX)
    found = {t["Properties"]["TableName"]: t["Properties"]
             for t in synthesized.resources("AWS::DynamoDB::Table").values()}
    assert set(found) == {spec.name for spec in schema.table_specs(names)}
    for spec in schema.table_specs(names):
        props = found[spec.name]
        assert props["KeySchema"] == spec.create_table_kwargs()["KeySchema"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        if spec.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": spec.ttl_attribute, "Enabled": True}


def test_stateful_resources_are_retained(synthesized: Synthesized) -> None:
    for kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Logs::LogGroup"):
        for resource in synthesized.resources(kind).values():
            assert resource["DeletionPolicy"] == "Retain"
            assert resource["UpdateReplacePolicy"] == "Retain"


def test_buckets_are_private_encrypted_versioned_and_tls_only(synthesized: Synthesized) -> None:
    buckets = synthesized.resources("AWS::S3::Bucket")
    assert len(buckets) == 2  # data + server access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    tls_only = Match.object_like({
        "Effect": "Deny", "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    policies = synthesized.resources("AWS::S3::BucketPolicy")
    assert {_ref(p["Properties"]["Bucket"]) for p in policies.values()} == set(buckets)
    synthesized.template.all_resources_properties("AWS::S3::BucketPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([tls_only])}})


def _data_bucket(synthesized: Synthesized) -> dict[str, Any]:
    return next(b["Properties"] for b in synthesized.resources("AWS::S3::Bucket").values()
                if "LoggingConfiguration" in b["Properties"])


def test_data_bucket_logs_access_to_the_log_bucket(synthesized: Synthesized) -> None:
    logging = _data_bucket(synthesized)["LoggingConfiguration"]
    target = _ref(logging["DestinationBucketName"])
    assert synthesized.resources("AWS::S3::Bucket")[target]["Properties"]["LifecycleConfiguration"]
    synthesized.template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": target},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject"})])}})


def test_lifecycle_rules_prepare_the_archive_tier(synthesized: Synthesized) -> None:
    rules = {r["Id"]: r for r in _data_bucket(synthesized)["LifecycleConfiguration"]["Rules"]}
    segments, blobs = rules["archived-segments"], rules["large-batches"]
    assert segments["Prefix"] == schema.SEGMENT_PREFIX
    assert segments["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
                                       {"StorageClass": "GLACIER_IR", "TransitionInDays": 90}]
    assert blobs["Prefix"] == schema.BLOB_PREFIX
    for rule in (segments, blobs):
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["delete-markers"]["ExpiredObjectDeleteMarker"] is True


# ---- functions -----------------------------------------------------------------------


def test_functions_run_powertools_handlers_with_explicit_limits(synthesized: Synthesized) -> None:
    functions = synthesized.resources("AWS::Lambda::Function").values()
    assert {f["Properties"]["Handler"] for f in functions} == set(CONTRACT.values())
    for function in functions:
        props = function["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert 128 <= props["MemorySize"] <= 1024
        if props["Handler"] == "functions.api.archiver_handler":  # scheduled passes
            assert props["Timeout"] <= 900
        else:
            assert props["Timeout"] < API_TIMEOUT_S
        env = props["Environment"]["Variables"]
        checks_body_topics = props["Handler"] in ("functions.api.consume_handler",
                                                  "functions.api.admin_handler",
                                                  "functions.api.produce_handler")
        assert set(env) == {"STREAMLET_TABLE_PREFIX", "STREAMLET_BUCKET",
                            "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                            *(["STREAMLET_GRANTS_PATH"] if checks_body_topics else [])}
        assert env["STREAMLET_TABLE_PREFIX"] == PREFIX
        assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) == (
            "streamlet", "Streamlet")


def test_each_function_has_its_own_role_and_log_group(synthesized: Synthesized) -> None:
    functions = synthesized.resources("AWS::Lambda::Function").values()
    roles = {_ref(f["Properties"]["Role"]) for f in functions}
    groups = {_ref(f["Properties"]["LoggingConfig"]["LogGroup"]) for f in functions}
    assert len(roles) == len(groups) == 4
    log_groups = synthesized.resources("AWS::Logs::LogGroup")
    for group in groups:
        assert log_groups[group]["Properties"]["RetentionInDays"] == 30


def test_all_functions_share_one_code_asset(synthesized: Synthesized) -> None:
    codes = {json.dumps(f["Properties"]["Code"], sort_keys=True)
             for f in synthesized.resources("AWS::Lambda::Function").values()}
    assert len(codes) == 1


# ---- HTTP API ------------------------------------------------------------------------


def test_routes_follow_the_handler_contract(synthesized: Synthesized) -> None:
    integrations = synthesized.resources("AWS::ApiGatewayV2::Integration")
    functions = synthesized.resources("AWS::Lambda::Function")
    routes = {}
    for route in synthesized.resources("AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        integration = integrations[target]["Properties"]
        assert integration["PayloadFormatVersion"] == "2.0"
        handler = functions[_ref(integration["IntegrationUri"])]["Properties"]["Handler"]
        routes[route["Properties"]["RouteKey"]] = handler
    assert routes == CONTRACT


def test_every_route_requires_iam_authorization(synthesized: Synthesized) -> None:
    routes = synthesized.resources("AWS::ApiGatewayV2::Route").values()
    assert routes
    assert {r["Properties"]["AuthorizationType"] for r in routes} == {"AWS_IAM"}


def test_the_api_has_no_cors_and_no_implicit_default_stage(synthesized: Synthesized) -> None:
    (api,) = synthesized.resources("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "HTTP"
    assert "CorsConfiguration" not in api["Properties"]
    assert len(synthesized.resources("AWS::ApiGatewayV2::Stage")) == 1


def test_stage_throttles_and_writes_json_access_logs(synthesized: Synthesized) -> None:
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert (props["StageName"], props["AutoDeploy"]) == ("$default", True)
    throttle = props["DefaultRouteSettings"]
    assert throttle["ThrottlingRateLimit"] == 1000
    assert throttle["ThrottlingBurstLimit"] == 500
    access = props["AccessLogSettings"]
    log_group = synthesized.resources("AWS::Logs::LogGroup")[_ref(access["DestinationArn"])]
    assert log_group["Properties"]["RetentionInDays"] == 30
    fields = json.loads(access["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert {"status", "routeKey", "userArn", "integrationError"} <= set(fields)


# ---- monitoring and outputs ------------------------------------------------------------


def _alarm_metrics(synthesized: Synthesized) -> list[str]:
    names = []
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [m["MetricStat"]["Metric"]["MetricName"]
                   for m in props.get("Metrics", []) if "MetricStat" in m]
        names.extend(metrics or [props["MetricName"]])
    return names


def test_alarms_cover_errors_throttles_and_5xx(synthesized: Synthesized) -> None:
    names = _alarm_metrics(synthesized)
    assert names.count("Errors") == names.count("Throttles") == 4
    assert names.count("ReadThrottleEvents") == names.count("WriteThrottleEvents") == 3
    assert names.count("5xx") == 1
    (topic,) = synthesized.resources("AWS::SNS::Topic")
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_archive_lag_alarm_watches_what_the_archiver_publishes(
        synthesized: Synthesized) -> None:
    [alarm] = [a["Properties"] for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("MetricName") == "ArchiveLagSeconds"]
    # the namespace and dimension Powertools' embedded metric format writes from the function
    env = next(iter(synthesized.resources("AWS::Lambda::Function").values())
               )["Properties"]["Environment"]["Variables"]
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["Statistic"] == "Maximum" and alarm["Period"] == 300  # the schedule's rate
    assert alarm["Threshold"] == 6 * 3600
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert alarm["TreatMissingData"] == "breaching"  # passes stopped reporting: alarm too
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize(("every", "periods"), [(Duration.hours(12), 2), (Duration.days(1), 1)])
def test_archive_lag_alarm_follows_a_slower_schedule(every: Duration, periods: int) -> None:
    stack = Stack(App(), "Slow")
    StreamletMonitoring(stack, "Monitoring", functions={}, tables={},
                        api=apigw.HttpApi(stack, "Api"), archive_every=every)
    [alarm] = [a["Properties"] for a in Template.from_stack(stack).find_resources(
        "AWS::CloudWatch::Alarm").values() if a["Properties"]["MetricName"] == "ArchiveLagSeconds"]
    assert alarm["Period"] == every.to_seconds()
    assert alarm["EvaluationPeriods"] == periods  # at most a day in all


@pytest.mark.parametrize("every", [Duration.days(2), Duration.seconds(30)])
def test_archive_schedules_an_alarm_cannot_watch_are_refused(every: Duration) -> None:
    stack = Stack(App(), "Bad")
    with pytest.raises(ValueError, match=r"archive_every=.*from 1 minute to 1 day"):
        StreamletMonitoring(stack, "Monitoring", functions={}, tables={},
                            api=apigw.HttpApi(stack, "Api"), archive_every=every)


def test_alarm_topic_is_encrypted_with_a_rotating_key(synthesized: Synthesized) -> None:
    (topic,) = synthesized.resources("AWS::SNS::Topic").values()
    (key_id, key), = synthesized.resources("AWS::KMS::Key").items()
    assert _ref(topic["Properties"]["KmsMasterKeyId"]) == key_id
    assert key["Properties"]["EnableKeyRotation"] is True
    synthesized.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_outputs_give_clients_the_endpoints(synthesized: Synthesized) -> None:
    outputs = synthesized.template.find_outputs("*")
    assert {"ApiEndpoint", "DirectEndpoint", "TopicsTable", "LogTable", "GroupsTable",
            "DataBucket", "Dashboard", "AlarmTopic"} <= set(outputs)
    assert outputs["LogTable"]["Value"] == f"{PREFIX}-log"
    direct = json.dumps(outputs["DirectEndpoint"]["Value"])
    assert f"direct://{PREFIX}?bucket={PREFIX}-data-" in direct and "&region=" in direct
    assert outputs["ApiEndpoint"]["Value"]["Fn::GetAtt"][1] == "ApiEndpoint"
