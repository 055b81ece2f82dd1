"""Confluent REST Proxy v3 topic configs: list, get, set, reset and batch-alter them.

Shapes as Confluent's ``api/v3/openapi.yaml`` (``TopicConfigData``): each config says
whether it is the default or set on the topic (``source`` ``DEFAULT_CONFIG`` or
``DYNAMIC_TOPIC_CONFIG``, from the keys recorded as the topic's overrides, not from
comparing values), with its synonyms (the override, then the default). Changes go
through ``Engine.alter_topic_config``: validated as at creation, applied all or nothing,
picked up by appends, fetches and the archiver within seconds.

``GET /v3/clusters/{c}/topics/-/configs`` lists every topic's configs, as Confluent's
does (so a topic named ``-`` has no configs path of its own here).
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from streamlet.engine.topics import TopicMeta
from streamlet.errors import ConfigNotFound, InvalidConfig, TopicNotFound
from streamlet.topicconfig import CONFIG_KEYS
from streamlet.wire import CLUSTER_ID

from ._runtime import engine
from ._shared import (
    ClusterId,
    check_cluster,
    listing,
    new_router,
    no_content,
    resource_meta,
    unquoted,
)

router = new_router()
TOPICS = "/v3/clusters/<cluster_id>/topics"
DEFAULT, OVERRIDE = "DEFAULT_CONFIG", "DYNAMIC_TOPIC_CONFIG"
Value = StrictStr | StrictInt | None


class UpdateConfig(BaseModel):
    """``PUT .../configs/{name}`` (``UpdateConfigRequestData``)."""

    value: Value = None


class AlterEntry(BaseModel):
    """One entry of ``configs:alter``: SET (the default) or DELETE one config."""

    name: StrictStr
    value: Value = None
    operation: Literal["SET", "DELETE"] | None = None


class AlterConfigs(BaseModel):
    """``POST .../configs:alter`` (``AlterConfigBatchRequestData``)."""

    data: list[AlterEntry] = Field(max_length=100)
    validate_only: StrictBool = False


# ---- resources ----------------------------------------------------------------------------


def _fresh(topic: str) -> TopicMeta:
    """The topic's config as stored now (not a cached copy: an alteration shows at once)."""
    return engine().topics.get(unquoted(topic), fresh=True)


def config_resource(meta: TopicMeta, name: str) -> dict[str, Any]:
    """One ``KafkaTopicConfig``: its value, where it comes from, and its synonyms."""
    value = meta.config[name]
    spec = CONFIG_KEYS.get(name)
    overridden = name in meta.overrides or spec is None
    synonyms = [{"name": name, "value": value, "source": OVERRIDE}] if overridden else []
    if spec is not None:
        synonyms.append({"name": name, "value": spec.default, "source": DEFAULT})
    path = f"/v3/clusters/{CLUSTER_ID}/topics/{meta.name}/configs/{name}"
    return {"kind": "KafkaTopicConfig",
            "metadata": resource_meta(router.current_event, path,
                                      f"/topic={meta.name}/config={name}"),
            "cluster_id": CLUSTER_ID, "topic_name": meta.name, "name": name, "value": value,
            "is_default": not overridden, "is_read_only": False, "is_sensitive": False,
            "source": OVERRIDE if overridden else DEFAULT, "synonyms": synonyms}


def _configs(meta: TopicMeta) -> list[dict[str, Any]]:
    return [config_resource(meta, name) for name in sorted(meta.config)]


def _listing(path: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return listing(router.current_event, "KafkaTopicConfigList", path, data)


def _known(topic: str, name: str) -> str:
    """A config name from the path; 404 for one that topics do not have."""
    if unquoted(name) not in CONFIG_KEYS:
        raise ConfigNotFound(unquoted(topic), unquoted(name))
    return unquoted(name)


# ---- routes -------------------------------------------------------------------------------


@router.get(f"{TOPICS}/-/configs")
def list_all_topic_configs(cluster_id: ClusterId) -> dict[str, Any]:
    """Every config of every topic."""
    check_cluster(cluster_id)
    data: list[dict[str, Any]] = []
    for name in engine().list_topics():
        try:
            data += _configs(_fresh(name))
        except TopicNotFound:
            continue  # deleted while listing
    return _listing(f"/v3/clusters/{CLUSTER_ID}/topics/-/configs", data)


@router.get(f"{TOPICS}/<topic>/configs")
def list_topic_configs(cluster_id: ClusterId, topic: str) -> dict[str, Any]:
    """Every config of a topic; ``source`` tells topic overrides from defaults."""
    check_cluster(cluster_id)
    meta = _fresh(topic)
    return _listing(f"/v3/clusters/{CLUSTER_ID}/topics/{meta.name}/configs", _configs(meta))


@router.get(f"{TOPICS}/<topic>/configs/<name>")
def get_topic_config(cluster_id: ClusterId, topic: str, name: str) -> dict[str, Any]:
    """One config of a topic (404 for a name that is not a topic config)."""
    check_cluster(cluster_id)
    meta = _fresh(topic)
    if unquoted(name) not in meta.config:
        raise ConfigNotFound(meta.name, unquoted(name))
    return config_resource(meta, unquoted(name))


@router.put(f"{TOPICS}/<topic>/configs/<name>")
def update_topic_config(cluster_id: ClusterId, topic: str, name: str,
                        body: UpdateConfig) -> Response[None]:
    """Set one config on the topic (204), validated as at creation."""
    check_cluster(cluster_id)
    key = _known(topic, name)
    if body.value is None:
        raise InvalidConfig(f"Config '{key}' needs a value; DELETE resets it to its default.")
    engine().alter_topic_config(unquoted(topic), {key: body.value})
    return no_content()


@router.delete(f"{TOPICS}/<topic>/configs/<name>")
def reset_topic_config(cluster_id: ClusterId, topic: str, name: str) -> Response[None]:
    """Reset one config to its default (204)."""
    check_cluster(cluster_id)
    engine().alter_topic_config(unquoted(topic), deletes=[_known(topic, name)])
    return no_content()


@router.post(f"{TOPICS}/<topic>/configs:alter")
def alter_topic_configs(cluster_id: ClusterId, topic: str,
                        body: AlterConfigs) -> Response[None]:
    """Set and reset several configs at once, all or nothing (204); with
    ``validate_only``, only check that the change would be accepted."""
    check_cluster(cluster_id)
    updates: dict[str, object] = {}
    deletes: list[str] = []
    for entry in body.data:
        if entry.name in updates or entry.name in deletes:
            raise InvalidConfig(f"Config '{entry.name}' appears twice in one alteration.")
        if entry.operation == "DELETE":
            deletes.append(entry.name)
        elif entry.value is None:
            raise InvalidConfig(f"Config '{entry.name}' needs a value to SET (or "
                                "operation DELETE).")
        else:
            updates[entry.name] = entry.value
    engine().alter_topic_config(unquoted(topic), updates, deletes, body.validate_only)
    return no_content()
