"""REST Proxy v3 topic configs (``functions.v3_configs``) through ``admin_handler``: the
shapes of Confluent's ``TopicConfigData``, sources from the topic's overrides, changes
validated as at creation, and the fuzzing contract (no 5xx, error bodies, nothing written
by a refused request)."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from streamlet.engine import Engine
from tests.functions.conftest import call
from tests.functions.test_fuzz import FUZZ, JSON, SEGMENT, prepared, run

T = "/v3/clusters/streamlet/topics"
_RELATED = {"type": "object", "required": ["self"],
            "properties": {"self": {"type": "string"}, "next": {"type": ["string", "null"]},
                           "resource_name": {"type": ["string", "null"]}}}
SOURCE = {"enum": ["DYNAMIC_TOPIC_CONFIG", "DEFAULT_CONFIG"]}
# Confluent's api/v3/openapi.yaml: TopicConfigData (AbstractConfigData + topic_name) and
# TopicConfigDataList (ResourceCollection + data), as JSON Schema.
TOPIC_CONFIG_DATA = {
    "type": "object",
    "required": ["kind", "metadata", "cluster_id", "name", "is_default", "is_read_only",
                 "is_sensitive", "source", "synonyms", "topic_name"],
    "properties": {
        "kind": {"const": "KafkaTopicConfig"}, "metadata": _RELATED,
        "cluster_id": {"type": "string"}, "topic_name": {"type": "string"},
        "name": {"type": "string"}, "value": {"type": ["string", "null"]},
        "is_default": {"type": "boolean"}, "is_read_only": {"type": "boolean"},
        "is_sensitive": {"type": "boolean"}, "source": SOURCE,
        "synonyms": {"type": "array", "items": {
            "type": "object", "required": ["name", "source"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["string", "null"]},
                           "source": SOURCE}}}}}
TOPIC_CONFIG_LIST = {"type": "object", "required": ["kind", "metadata", "data"],
                     "properties": {"kind": {"const": "KafkaTopicConfigList"},
                                    "metadata": _RELATED,
                                    "data": {"type": "array", "items": TOPIC_CONFIG_DATA}}}


def configs(topic: str) -> dict[str, Any]:
    reply = call("GET", f"{T}/{topic}/configs")
    assert reply.status == 200
    jsonschema.validate(reply.json(), TOPIC_CONFIG_LIST)
    return {c["name"]: c for c in reply.json()["data"]}


def test_sources_come_from_the_topics_overrides_not_from_values(aws: Engine) -> None:
    """A key set on the topic is the topic's even when it equals the default (Kafka)."""
    aws.create_topic("events", config={"retention.ms": 604800000, "segment.ms": 60000})
    found = configs("events")
    assert {k for k, c in found.items() if c["source"] == "DYNAMIC_TOPIC_CONFIG"} == {
        "retention.ms", "segment.ms"}
    retention = found["retention.ms"]
    assert (retention["value"], retention["is_default"]) == ("604800000", False)
    assert retention["synonyms"] == [
        {"name": "retention.ms", "value": "604800000", "source": "DYNAMIC_TOPIC_CONFIG"},
        {"name": "retention.ms", "value": "604800000", "source": "DEFAULT_CONFIG"}]
    assert found["inline.max.bytes"]["synonyms"] == [
        {"name": "inline.max.bytes", "value": "8192", "source": "DEFAULT_CONFIG"}]


def test_get_one_config(aws: Engine) -> None:
    aws.create_topic("events", config={"retention.ms": 60000})
    reply = call("GET", f"{T}/events/configs/retention.ms")
    assert reply.status == 200
    jsonschema.validate(reply.json(), TOPIC_CONFIG_DATA)
    body = reply.json()
    assert (body["topic_name"], body["value"], body["source"]) == (
        "events", "60000", "DYNAMIC_TOPIC_CONFIG")
    assert body["metadata"]["self"].endswith("/v3/clusters/streamlet/topics/events/configs/"
                                             "retention.ms")
    assert body["metadata"]["resource_name"] == (
        "crn:///kafka=streamlet/topic=events/config=retention.ms")
    missing = call("GET", f"{T}/events/configs/min.insync.replicas")
    assert (missing.status, missing.json()["code"], missing.json()["error_code"]) == (
        404, "config_not_found", 40405)
    assert call("GET", f"{T}/nope/configs/retention.ms").json()["error_code"] == 40401


def test_put_sets_and_delete_resets_one_config(aws: Engine) -> None:
    aws.create_topic("events")
    assert call("PUT", f"{T}/events/configs/retention.ms", {"value": "3600000"}).status == 204
    assert call("PUT", f"{T}/events/configs/max.message.bytes", {"value": 65536}).status == 204
    found = configs("events")
    assert (found["retention.ms"]["value"], found["retention.ms"]["source"]) == (
        "3600000", "DYNAMIC_TOPIC_CONFIG")
    assert aws.describe_topic("events").overrides == {"retention.ms", "max.message.bytes"}
    assert call("DELETE", f"{T}/events/configs/retention.ms").status == 204
    assert configs("events")["retention.ms"]["source"] == "DEFAULT_CONFIG"
    assert aws.describe_topic("events").config["retention.ms"] == "604800000"


def test_refused_changes_change_nothing(aws: Engine) -> None:
    aws.create_topic("events", config={"retention.ms": 60000})
    before = aws.describe_topic("events")
    cases = [
        (call("PUT", f"{T}/events/configs/retention.ms", {"value": "-5"}), 400, "invalid_config"),
        (call("PUT", f"{T}/events/configs/retention.ms", {"value": None}), 400,
         "invalid_config"),
        (call("PUT", f"{T}/events/configs/retention.ms", {"value": True}), 400,
         "invalid_request"),
        (call("PUT", f"{T}/events/configs/nope", {"value": "1"}), 404, "config_not_found"),
        (call("DELETE", f"{T}/events/configs/nope"), 404, "config_not_found"),
        (call("PUT", f"{T}/nope/configs/retention.ms", {"value": "1"}), 404,
         "topic_not_found"),
        (call("POST", f"{T}/events/configs:alter", {"data": [
            {"name": "retention.ms", "value": "1000"}, {"name": "nope", "value": "1"}]}),
         400, "invalid_config"),
        (call("POST", f"{T}/events/configs:alter", {"data": [
            {"name": "retention.ms", "value": "1000"},
            {"name": "retention.ms", "operation": "DELETE"}]}), 400, "invalid_config"),
        (call("POST", f"{T}/events/configs:alter", {"data": [
            {"name": "retention.ms", "value": "1", "operation": "APPEND"}]}), 400,
         "invalid_request"),
        (call("POST", f"{T}/events/configs:alter", {"data": [{"name": "segment.ms"}]}), 400,
         "invalid_config"),
        (call("POST", f"{T}/events/configs:alter", {"data": [
            {"name": "local.retention.ms", "value": "1000"}]}), 400, "invalid_config"),
    ]
    for reply, status, code in cases:
        assert (reply.status, reply.json()["code"]) == (status, code), reply.json()
    after = aws.describe_topic("events")
    assert (after.config, after.overrides) == (before.config, before.overrides)


def test_batch_alter_sets_and_deletes_at_once_and_validate_only_writes_nothing(
        aws: Engine) -> None:
    aws.create_topic("events", config={"retention.ms": 60000})
    dry = {"data": [{"name": "retention.ms", "operation": "DELETE"},
                    {"name": "compression.type", "value": "gzip"}], "validate_only": True}
    assert call("POST", f"{T}/events/configs:alter", dry).status == 204
    assert aws.describe_topic("events").overrides == {"retention.ms"}
    assert call("POST", f"{T}/events/configs:alter", {**dry, "validate_only": False}
                ).status == 204
    described = aws.describe_topic("events")
    assert described.overrides == {"compression.type"}
    assert (described.config["compression.type"], described.config["retention.ms"]) == (
        "gzip", "604800000")


def test_every_topics_configs(aws: Engine) -> None:
    aws.create_topic("a", config={"retention.ms": 60000})
    aws.create_topic("b")
    reply = call("GET", f"{T}/-/configs")
    assert reply.status == 200
    jsonschema.validate(reply.json(), TOPIC_CONFIG_LIST)
    data = reply.json()["data"]
    assert {c["topic_name"] for c in data} == {"a", "b"}
    assert [c["name"] for c in data if c["source"] == "DYNAMIC_TOPIC_CONFIG"] == [
        "retention.ms"]
    assert reply.json()["metadata"]["self"].endswith("/v3/clusters/streamlet/topics/-/configs")
    assert call("GET", "/v3/clusters/other/topics/-/configs").status == 404


CONFIG_BODY = st.fixed_dictionaries({}, optional={
    "value": st.one_of(st.sampled_from(["60000", "-1", "gzip", "", "9" * 30]), JSON),
    "validate_only": st.one_of(st.booleans(), JSON),
    "data": st.one_of(JSON, st.lists(st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["retention.ms", "segment.ms", "nope"]), JSON)},
        optional={"value": st.one_of(st.sampled_from(["1000", "-1", "zstd"]), JSON),
                  "operation": st.one_of(st.sampled_from(["SET", "DELETE", "set", "X"]),
                                         JSON)}), max_size=3))})


@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
       topic=st.one_of(st.just("orders"), st.just("-"), SEGMENT),
       name=st.one_of(st.sampled_from(["retention.ms", "compression.type", "nope"]), SEGMENT),
       body=st.one_of(CONFIG_BODY, JSON))
def test_fuzzing_the_config_routes(aws: Engine, method: str, topic: str, name: str,
                                   body: Any) -> None:
    engine = prepared(aws)
    path = (f"{T}/{topic}/configs:alter" if method == "POST"
            else f"{T}/{topic}/configs" if method == "GET" and name == "nope"
            else f"{T}/{topic}/configs/{name}")
    run(engine, method, path, body if method in ("PUT", "POST") else None)
