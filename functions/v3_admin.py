"""Confluent REST Proxy v3 administration: clusters, topics and partitions (topic configs:
:mod:`functions.v3_configs`).

One fixed cluster, ``streamlet``. Resources carry REST Proxy's ``kind``, ``metadata.self``
and ``metadata.resource_name``; partitions add ``log_start_offset`` and
``high_watermark`` (a Streamlet extension REST Proxy clients ignore).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response

from streamlet.errors import TopicExists, TopicNotFound
from streamlet.records import TopicDescription
from streamlet.topicconfig import (
    validate_config,
    validate_partitions,
    validate_topic_name,
)
from streamlet.wire import CLUSTER_ID

from ._runtime import engine
from ._shared import ClusterId, check_cluster, listing, new_router, related, resource_meta, unquoted
from .models import CreateTopic, UpdateTopic

router = new_router()
TOPICS = "/v3/clusters/<cluster_id>/topics"


def _meta(path: str, crn: str) -> dict[str, Any]:
    return resource_meta(router.current_event, path, crn)


def _related(path: str) -> dict[str, str]:
    return related(router.current_event, path)


def cluster_resource() -> dict[str, Any]:
    path = f"/v3/clusters/{CLUSTER_ID}"
    return {"kind": "KafkaCluster", "metadata": _meta(path, ""), "cluster_id": CLUSTER_ID,
            "controller": None, "topics": _related(f"{path}/topics")}


def topic_resource(topic: TopicDescription) -> dict[str, Any]:
    path = f"/v3/clusters/{CLUSTER_ID}/topics/{topic.name}"
    return {
        "kind": "KafkaTopic", "metadata": _meta(path, f"/topic={topic.name}"),
        "cluster_id": CLUSTER_ID, "topic_name": topic.name, "topic_id": topic.topic_id,
        "is_internal": False, "replication_factor": 3, "partitions_count": topic.partitions,
        "partitions": _related(f"{path}/partitions"), "configs": _related(f"{path}/configs"),
        "authorized_operations": [],
    }


def partition_resource(topic: str, partition: int, low: int, high: int) -> dict[str, Any]:
    path = f"/v3/clusters/{CLUSTER_ID}/topics/{topic}/partitions/{partition}"
    return {"kind": "KafkaPartition",
            "metadata": _meta(path, f"/topic={topic}/partition={partition}"),
            "cluster_id": CLUSTER_ID, "topic_name": topic, "partition_id": partition,
            "leader": None, "replicas": _related(f"{path}/replicas"),
            "log_start_offset": low, "high_watermark": high}


def _listing(kind: str, path: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return listing(router.current_event, kind, path, data)


@router.get("/v3/clusters")
def list_clusters() -> dict[str, Any]:
    """The one cluster of this deployment."""
    return _listing("KafkaClusterList", "/v3/clusters", [cluster_resource()])


@router.get("/v3/clusters/<cluster_id>")
def get_cluster(cluster_id: ClusterId) -> dict[str, Any]:
    """The cluster resource."""
    check_cluster(cluster_id)
    return cluster_resource()


@router.get(TOPICS)
def list_topics(cluster_id: ClusterId) -> dict[str, Any]:
    """Every topic, with its partition count."""
    check_cluster(cluster_id)
    data = []
    for name in engine().list_topics():
        try:
            data.append(topic_resource(engine().topic_metadata(name)))
        except TopicNotFound:
            continue  # deleted while listing
    return _listing("KafkaTopicList", f"/v3/clusters/{CLUSTER_ID}/topics", data)


@router.post(TOPICS)
def create_topic(cluster_id: ClusterId, body: CreateTopic) -> Response[dict[str, Any]]:
    """Create a topic (201), or only validate the request (200) with ``validate_only``."""
    check_cluster(cluster_id)
    config = {c.name: c.value for c in body.configs}
    if body.validate_only:
        return Response(200, "application/json", topic_resource(_dry_run(body, config)))
    created = engine().create_topic(body.topic_name, body.partitions_count, config)
    return Response(201, "application/json", topic_resource(created))


def _dry_run(body: CreateTopic, config: Mapping[str, object]) -> TopicDescription:
    validate_topic_name(body.topic_name)
    partitions = validate_partitions(body.topic_name, body.partitions_count)
    checked = validate_config(config)
    try:
        engine().describe_topic(body.topic_name)
    except TopicNotFound:
        return TopicDescription(body.topic_name, "", partitions, checked)
    raise TopicExists(body.topic_name)


@router.get(f"{TOPICS}/<topic>")
def get_topic(cluster_id: ClusterId, topic: str) -> dict[str, Any]:
    """One topic."""
    check_cluster(cluster_id)
    return topic_resource(engine().topic_metadata(unquoted(topic)))


@router.patch(f"{TOPICS}/<topic>")
def update_topic(cluster_id: ClusterId, topic: str, body: UpdateTopic) -> dict[str, Any]:
    """Increase the partition count (partitions never shrink)."""
    check_cluster(cluster_id)
    return topic_resource(engine().create_partitions(unquoted(topic), body.partitions_count))


@router.delete(f"{TOPICS}/<topic>")
def delete_topic(cluster_id: ClusterId, topic: str) -> Response[None]:
    """Delete a topic and all of its records (204)."""
    check_cluster(cluster_id)
    engine().delete_topic(unquoted(topic))
    return Response(204)


@router.get(f"{TOPICS}/<topic>/partitions")
def list_partitions(cluster_id: ClusterId, topic: str) -> dict[str, Any]:
    """Every partition of a topic, with its watermarks."""
    check_cluster(cluster_id)
    described = engine().describe_topic(unquoted(topic))
    data = [partition_resource(described.name, p.partition, p.low, p.high)
            for p in described.partition_info]
    return _listing("KafkaPartitionList",
                    f"/v3/clusters/{CLUSTER_ID}/topics/{described.name}/partitions", data)


@router.get(f"{TOPICS}/<topic>/partitions/<partition>")
def get_partition(cluster_id: ClusterId, topic: str, partition: int) -> dict[str, Any]:
    """One partition, with its watermarks."""
    check_cluster(cluster_id)
    low, high = engine().watermarks(unquoted(topic), partition)
    return partition_resource(unquoted(topic), partition, low, high)
