"""The synthesized stack deploys into moto's CloudFormation, as ``cdk deploy`` would do it.

Like the CDK CLI, the test uploads every file asset of the assets manifest (the Lambda
code zip and the template itself) to the bootstrap bucket, sets the bootstrap version
parameter, and creates the stack from the uploaded template (TemplateURL: the template is
over CloudFormation's 51,200-byte TemplateBody limit). Asset bundling is skipped, so the
code zip holds the sources only.

moto 5.2.5's CloudFormation does not model these types; it records them without creating
anything (they appear with an empty ResourceType), so the test asserts on the rest:
``AWS::ApiGatewayV2::Api``, ``::Integration``, ``::Route``, ``::Stage``,
``AWS::CloudWatch::Alarm``, ``AWS::S3::BucketPolicy``, ``AWS::SNS::TopicPolicy`` and
``AWS::SNS::Subscription``. Outputs that read an attribute of a skipped resource (the API
endpoint) are dropped first: moto rejects the whole template otherwise. moto also
ignores the tables' PointInTimeRecoverySpecification and TimeToLiveSpecification (the
synthesis tests check those).
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudformation.parsing import resource_class_from_type

from streamlet.engine import Engine, schema

from .conftest import PREFIX, STACK, Synthesized

REGION, ACCOUNT = "us-east-1", "123456789012"
BOOTSTRAP_BUCKET = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
MOTO_SKIPS = {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Integration",
              "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage",
              "AWS::CloudWatch::Alarm", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy",
              "AWS::SNS::Subscription"}


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """The template minus outputs that read attributes of resources moto cannot create."""
    resources = template["Resources"]
    kept = {key: output for key, output in template.get("Outputs", {}).items()
            if not (isinstance(output["Value"], dict) and "Fn::GetAtt" in output["Value"]
                    and not resource_class_from_type(
                        resources[output["Value"]["Fn::GetAtt"][0]]["Type"]))}
    return {**template, "Outputs": kept}


def _publish_assets(s3: Any, outdir: Path) -> str:
    """Upload every file asset to the bootstrap bucket; return the template's URL."""
    manifest = json.loads((outdir / f"{STACK}.assets.json").read_text())
    template_key = ""
    for asset in manifest["files"].values():
        source = Path(asset["source"]["path"])
        source = source if source.is_absolute() else outdir / source
        if asset["source"]["packaging"] == "zip":
            body = _zip(source)
        else:
            template_key = next(iter(asset["destinations"].values()))["objectKey"]
            body = json.dumps(_for_moto(json.loads(source.read_text()))).encode()
        for destination in asset["destinations"].values():
            assert destination["bucketName"].startswith("cdk-hnb659fds-assets-")
            s3.put_object(Bucket=BOOTSTRAP_BUCKET, Key=destination["objectKey"], Body=body)
    return f"https://s3.amazonaws.com/{BOOTSTRAP_BUCKET}/{template_key}"


@pytest.fixture(scope="module")
def deployed(synthesized: Synthesized) -> Iterator[dict[str, Any]]:
    """The stack created in moto: its description and resource summaries."""
    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not supported by moto's CloudFormation")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BOOTSTRAP_BUCKET)
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String")
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(StackName=STACK, TemplateURL=_publish_assets(s3, synthesized.outdir),
                         Capabilities=["CAPABILITY_IAM"])
        yield {"stack": cfn.describe_stacks(StackName=STACK)["Stacks"][0],
               "resources": cfn.list_stack_resources(StackName=STACK)[
                   "StackResourceSummaries"]}


def test_stack_is_created(deployed: dict[str, Any]) -> None:
    assert deployed["stack"]["StackStatus"] == "CREATE_COMPLETE"


def test_every_resource_moto_models_reaches_create_complete(synthesized: Synthesized,
                                                            deployed: dict[str, Any]) -> None:
    declared = Counter(r["Type"] for r in synthesized.json["Resources"].values())
    modelled = {t: n for t, n in declared.items() if resource_class_from_type(t)}
    assert set(declared) - set(modelled) == MOTO_SKIPS
    created = Counter(r["ResourceType"] for r in deployed["resources"]
                      if r["ResourceStatus"] == "CREATE_COMPLETE" and r["ResourceType"])
    assert created == modelled


def test_outputs_name_the_deployed_tables_and_bucket(deployed: dict[str, Any]) -> None:
    outputs = {o["OutputKey"]: o["OutputValue"] for o in deployed["stack"]["Outputs"]}
    bucket = f"{PREFIX}-data-{ACCOUNT}-{REGION}"
    assert outputs["DataBucket"] == bucket
    assert outputs["DirectEndpoint"] == f"direct://{PREFIX}?bucket={bucket}&region={REGION}"
    assert boto3.client("s3", region_name=REGION).head_bucket(Bucket=bucket)


def test_deployed_functions_point_at_the_deployed_storage(deployed: dict[str, Any]) -> None:
    functions = boto3.client("lambda", region_name=REGION).list_functions()["Functions"]
    assert sorted(f["Handler"] for f in functions) == [
        "functions.api.admin_handler", "functions.api.archiver_handler",
        "functions.api.consume_handler", "functions.api.produce_handler"]
    for function in functions:
        env = function["Environment"]["Variables"]
        assert env["STREAMLET_TABLE_PREFIX"] == PREFIX
        assert env["STREAMLET_BUCKET"] == f"{PREFIX}-data-{ACCOUNT}-{REGION}"
        assert function["Runtime"] == "python3.13"


def test_deployed_tables_have_the_schema_keys(deployed: dict[str, Any]) -> None:
    """moto's CloudFormation ignores PITR and TTL settings; test_synth checks those."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for spec in schema.table_specs(schema.Names(prefix=PREFIX)):
        table = dynamodb.describe_table(TableName=spec.name)["Table"]
        assert table["KeySchema"] == spec.create_table_kwargs()["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_the_engine_runs_on_the_deployed_storage(deployed: dict[str, Any]) -> None:
    names = schema.Names(prefix=PREFIX, bucket=f"{PREFIX}-data-{ACCOUNT}-{REGION}")
    engine = Engine(boto3.client("dynamodb", region_name=REGION),
                    boto3.client("s3", region_name=REGION), names)
    engine.create_topic("deployed", partitions=2)
    assert engine.describe_topic("deployed").partitions == 2
    assert engine.watermarks("deployed", 1) == (0, 0)


def test_the_deployed_schedule_invokes_the_archiver(deployed: dict[str, Any]) -> None:
    events = boto3.client("events", region_name=REGION)
    (rule,) = events.list_rules()["Rules"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)" and rule["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    functions = boto3.client("lambda", region_name=REGION).list_functions()["Functions"]
    archiver = next(f for f in functions if f["Handler"] == "functions.api.archiver_handler")
    assert target["Arn"] == archiver["FunctionArn"]
    assert archiver["Timeout"] == 600 and archiver["MemorySize"] == 1024
