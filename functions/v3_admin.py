"""Confluent REST Proxy v3 administration: clusters, topics and partitions (topic configs:
:mod:`functions.v3_configs`).

One fixed cluster, ``streamlet``. Resources carry REST Proxy's ``kind``, ``metadata.self``
and ``metadata.resource_name``; partitions add ``log_start_offset`` and
``high_watermark`` (a Streamlet extension REST Proxy clients ignore), and
``.../partitions/{p}/offset`` answers both watermarks as REST Proxy's
``earliest_offset`` / ``latest_offset``.

A serverless cluster has no brokers, replicas, reassignments or Kafka ACLs (IAM authorizes
every route). The relationships REST Proxy's document requires for them point at
collections that exist and are always empty: ``brokers``, ``broker-configs``, ``acls``,
``.../partitions/-/reassignment`` and ``.../partitions/{p}/replicas`` (docs/rest-v3.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from streamlet.errors import PartitionNotFound, TopicExists, TopicNotFound
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
CLUSTER = "/v3/clusters/<cluster_id>"
TOPICS = f"{CLUSTER}/topics"
ALL_TOPICS = "-"
"""``topics/-/...``: REST Proxy's name for every topic of the cluster."""
OffsetType = Literal["earliest", "latest", "earliest_and_latest"]


def _meta(path: str, crn: str) -> dict[str, Any]:
    return resource_meta(router.current_event, path, crn)


def _related(path: str) -> dict[str, str]:
    return related(router.current_event, path)


def _topic_path(topic: str) -> str:
    return f"/v3/clusters/{CLUSTER_ID}/topics/{topic}"


def cluster_resource() -> dict[str, Any]:
    """The cluster; no ``controller`` (there is no broker), the broker-level relationships
    lead to empty collections."""
    path = f"/v3/clusters/{CLUSTER_ID}"
    links = {name: _related(f"{path}/{suffix}") for name, suffix in (
        ("acls", "acls"), ("brokers", "brokers"), ("broker_configs", "broker-configs"),
        ("consumer_groups", "consumer-groups"), ("topics", "topics"),
        ("partition_reassignments", "topics/-/partitions/-/reassignment"))}
    return {"kind": "KafkaCluster", "metadata": _meta(path, ""), "cluster_id": CLUSTER_ID,
            **links}


def topic_resource(topic: TopicDescription) -> dict[str, Any]:
    path = _topic_path(topic.name)
    return {
        "kind": "KafkaTopic", "metadata": _meta(path, f"/topic={topic.name}"),
        "cluster_id": CLUSTER_ID, "topic_name": topic.name, "topic_id": topic.topic_id,
        "is_internal": False, "replication_factor": 3, "partitions_count": topic.partitions,
        "partitions": _related(f"{path}/partitions"), "configs": _related(f"{path}/configs"),
        "partition_reassignments": _related(f"{path}/partitions/-/reassignment"),
        "authorized_operations": [],
    }


def partition_resource(topic: str, partition: int, low: int, high: int) -> dict[str, Any]:
    """A partition; no ``leader`` (no broker leads it), ``replicas`` and ``reassignment``
    lead to empty collections."""
    path = f"{_topic_path(topic)}/partitions/{partition}"
    return {"kind": "KafkaPartition",
            "metadata": _meta(path, f"/topic={topic}/partition={partition}"),
            "cluster_id": CLUSTER_ID, "topic_name": topic, "partition_id": partition,
            "replicas": _related(f"{path}/replicas"),
            "reassignment": _related(f"{_topic_path(topic)}/partitions/-/reassignment"),
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


@router.get(f"{TOPICS}/<topic>/partitions/<partition>/offset")
def get_partition_offsets(cluster_id: ClusterId, topic: str, partition: int,
                          offset_type: Annotated[OffsetType, Query()] = "earliest_and_latest"
                          ) -> dict[str, Any]:
    """The partition's log start (``earliest_offset``) and high watermark
    (``latest_offset``); both are answered whatever ``offset_type`` asks for."""
    check_cluster(cluster_id)
    name = unquoted(topic)
    low, high = engine().watermarks(name, partition)
    path = f"{_topic_path(name)}/partitions/{partition}/offset"
    crn = f"/topic={name}/partition={partition}/offset_type={offset_type}"
    return {"kind": "KafkaPartitionWithOffsets", "metadata": _meta(path, crn),
            "cluster_id": CLUSTER_ID, "topic_name": name, "partition_id": partition,
            "earliest_offset": low, "latest_offset": high}


# ---- broker-level collections: served, always empty ----------------------------------------


def _empty(kind: str, path: str) -> dict[str, Any]:
    return _listing(kind, path, [])


@router.get(f"{CLUSTER}/brokers")
def list_brokers(cluster_id: ClusterId) -> dict[str, Any]:
    """No brokers: DynamoDB, S3 and Lambda serve the cluster (always an empty list)."""
    check_cluster(cluster_id)
    return _empty("KafkaBrokerList", f"/v3/clusters/{CLUSTER_ID}/brokers")


@router.get(f"{CLUSTER}/broker-configs")
def list_cluster_configs(cluster_id: ClusterId) -> dict[str, Any]:
    """No broker configs: settings are per topic (always an empty list)."""
    check_cluster(cluster_id)
    return _empty("KafkaClusterConfigList", f"/v3/clusters/{CLUSTER_ID}/broker-configs")


@router.get(f"{CLUSTER}/acls")
def search_acls(cluster_id: ClusterId) -> dict[str, Any]:
    """No Kafka ACLs: IAM authorizes every route (always an empty list; docs/security.md)."""
    check_cluster(cluster_id)
    return _empty("KafkaAclList", f"/v3/clusters/{CLUSTER_ID}/acls")


@router.get(f"{TOPICS}/<topic>/partitions/-/reassignment")
def list_reassignments(cluster_id: ClusterId, topic: str) -> dict[str, Any]:
    """No replica reassignments, ever; ``topic`` ``-`` is every topic (an empty list)."""
    check_cluster(cluster_id)
    name = unquoted(topic)
    if name != ALL_TOPICS:
        name = engine().topic_metadata(name).name  # 404 for an unknown topic
    return _empty("KafkaReassignmentList", f"{_topic_path(name)}/partitions/-/reassignment")


@router.get(f"{TOPICS}/<topic>/partitions/<partition>/replicas")
def list_replicas(cluster_id: ClusterId, topic: str, partition: int) -> dict[str, Any]:
    """No broker replicas: DynamoDB and S3 replicate across zones (an empty list)."""
    check_cluster(cluster_id)
    meta = engine().topic_metadata(unquoted(topic))
    if not 0 <= partition < meta.partitions:
        raise PartitionNotFound(meta.name, partition, meta.partitions)
    return _empty("KafkaReplicaList", f"{_topic_path(meta.name)}/partitions/{partition}/replicas")
