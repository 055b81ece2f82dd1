"""Topic administration over the Kafka protocol: CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DeleteRecords.

Each is the engine call the REST v3 admin routes make, authorized as those routes.
Replication factors and replica assignments are accepted and ignored: DynamoDB and S3
replicate every partition across three availability zones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidConfig, StreamletError
from ..records import TopicDescription
from ..topicconfig import validate_config, validate_partitions, validate_topic_name
from . import auth, codes
from .data import topic_uuid
from .protocol import ApiKey, response_class

if TYPE_CHECKING:
    from .auth import Session
    from .host import Host
    from .protocol import Request

TOPIC, BROKER = 2, 4
SOURCE_DYNAMIC_TOPIC, SOURCE_DEFAULT = 1, 5
SET, DELETE = 0, 1


class AdminApis:
    """Handlers of the administrative APIs."""

    def __init__(self, gateway: Host) -> None:
        self.gw = gateway

    def handlers(self) -> dict[int, Any]:
        return {ApiKey.CreateTopics: self.create_topics, ApiKey.DeleteTopics: self.delete_topics,
                ApiKey.CreatePartitions: self.create_partitions,
                ApiKey.DescribeConfigs: self.describe_configs,
                ApiKey.AlterConfigs: self.alter_configs,
                ApiKey.IncrementalAlterConfigs: self.incremental_alter_configs,
                ApiKey.DeleteRecords: self.delete_records}

    async def _guarded(self, session: Session, route: tuple[str, str],
                       action: Callable[[], Awaitable[Any]]) -> tuple[int, str | None, Any]:
        """(error code, message, result) of an authorized engine action."""
        if not self.gw.auth.allows(session, *route):
            return codes.TOPIC_AUTHORIZATION_FAILED, "Outside the caller's grant.", None
        try:
            return codes.NONE, None, await action()
        except StreamletError as error:
            return codes.code_for(error), error.message, None

    # ---- topics ---------------------------------------------------------------------------

    async def create_topics(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.CreateTopics, request.api_version)
        result_cls = cls.CreatableTopicResult

        async def one(topic: Any) -> Any:
            config = {c.name: c.value for c in topic.configs}
            partitions = 1 if topic.num_partitions == -1 else topic.num_partitions

            async def create() -> TopicDescription:
                if body.validate_only:
                    validate_topic_name(topic.name)
                    validate_partitions(topic.name, partitions)
                    validate_config(config)
                    return TopicDescription(topic.name, "", partitions, dict(config))
                return await self.gw.call(self.gw.engine.create_topic, topic.name, partitions,
                                          config)

            code, message, desc = await self._guarded(
                session, auth.admin_route("POST", "/topics"), create)
            if desc is None:
                return result_cls(name=topic.name, error_code=code, error_message=message,
                                  num_partitions=-1, replication_factor=-1)
            return result_cls(name=topic.name, error_code=0, error_message=None,
                              topic_id=topic_uuid(desc.topic_id) if desc.topic_id else None,
                              num_partitions=desc.partitions, replication_factor=3,
                              configs=_topic_configs(result_cls.CreatableTopicConfigs, desc))

        results = await asyncio.gather(*(one(t) for t in body.topics))
        return cls(throttle_time_ms=0, topics=list(results))

    async def delete_topics(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.DeleteTopics, request.api_version)
        names = list(body.topic_names or []) + [t.name for t in body.topics or [] if t.name]

        async def one(name: str) -> Any:
            async def delete() -> None:
                await self.gw.call(self.gw.engine.delete_topic, name)

            code, message, _ = await self._guarded(
                session, auth.admin_route("DELETE", f"/topics/{name}"), delete)
            return cls.DeletableTopicResult(name=name, error_code=code, error_message=message)

        return cls(throttle_time_ms=0, responses=list(await asyncio.gather(*map(one, names))))

    async def create_partitions(self, session: Session, request: Request) -> Any:
        body = request.body
        cls = response_class(ApiKey.CreatePartitions, request.api_version)

        async def one(topic: Any) -> Any:
            async def grow() -> None:
                if body.validate_only:
                    current = await self.gw.call(self.gw.engine.topic_metadata, topic.name)
                    if topic.count <= current.partitions:
                        from ..errors import InvalidPartitions

                        raise InvalidPartitions(f"Topic '{topic.name}' already has "
                                                f"{current.partitions} partitions.")
                    return
                await self.gw.call(self.gw.engine.create_partitions, topic.name, topic.count)

            code, message, _ = await self._guarded(
                session, auth.admin_route("PATCH", f"/topics/{topic.name}"), grow)
            return cls.CreatePartitionsTopicResult(name=topic.name, error_code=code,
                                                   error_message=message)

        results = await asyncio.gather(*(one(t) for t in body.topics))
        return cls(throttle_time_ms=0, results=list(results))

    # ---- configs --------------------------------------------------------------------------

    async def describe_configs(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.DescribeConfigs, request.api_version)
        result_cls = cls.DescribeConfigsResult

        async def one(resource: Any) -> Any:
            name, kind = resource.resource_name, resource.resource_type
            if kind != TOPIC:
                return result_cls(error_code=0, error_message=None, resource_type=kind,
                                  resource_name=name, configs=[])

            async def describe() -> TopicDescription:
                return await self.gw.call(self.gw.engine.describe_topic, name)

            code, message, desc = await self._guarded(
                session, auth.admin_route("GET", f"/topics/{name}/configs"), describe)
            configs = []
            if desc is not None:
                keys = set(resource.configuration_keys or desc.config)
                configs = [result_cls.DescribeConfigsResourceResult(
                    name=k, value=v, read_only=False, is_default=k not in desc.overrides,
                    config_source=SOURCE_DYNAMIC_TOPIC if k in desc.overrides
                    else SOURCE_DEFAULT, is_sensitive=False, synonyms=[], config_type=0,
                    documentation=None) for k, v in sorted(desc.config.items()) if k in keys]
            return result_cls(error_code=code, error_message=message, resource_type=kind,
                              resource_name=name, configs=configs)

        results = await asyncio.gather(*(one(r) for r in request.body.resources))
        return cls(throttle_time_ms=0, results=list(results))

    async def alter_configs(self, session: Session, request: Request) -> Any:
        """Legacy AlterConfigs: the given keys become the topic's whole set of overrides."""
        async def plan(name: str, configs: list[Any]) -> tuple[dict[str, object], list[str]]:
            desc = await self.gw.call(self.gw.engine.topic_metadata, name)
            updates: dict[str, object] = {c.name: c.value for c in configs}
            return updates, [k for k in desc.overrides if k not in updates]

        return await self._alter(session, request, ApiKey.AlterConfigs, plan)

    async def incremental_alter_configs(self, session: Session, request: Request) -> Any:
        async def plan(name: str, configs: list[Any]) -> tuple[dict[str, object], list[str]]:
            updates: dict[str, object] = {}
            deletes: list[str] = []
            for c in configs:
                if c.config_operation == SET:
                    updates[c.name] = c.value
                elif c.config_operation == DELETE:
                    deletes.append(c.name)
                else:
                    raise InvalidConfig(f"'{c.name}' is not a list: APPEND and SUBTRACT "
                                        "do not apply.")
            return updates, deletes

        return await self._alter(session, request, ApiKey.IncrementalAlterConfigs, plan)

    async def _alter(self, session: Session, request: Request, api: int,
                     plan: Callable[[str, list[Any]], Awaitable[tuple[dict[str, object],
                                                                      list[str]]]]) -> Any:
        body = request.body
        cls = response_class(api, request.api_version)

        async def one(resource: Any) -> Any:
            name, kind = resource.resource_name, resource.resource_type
            if kind != TOPIC:
                return cls.AlterConfigsResourceResponse(
                    error_code=codes.INVALID_REQUEST, resource_type=kind, resource_name=name,
                    error_message="Only topic configs can be altered.")

            async def alter() -> None:
                updates, deletes = await plan(name, list(resource.configs))
                await self.gw.call(self.gw.engine.alter_topic_config, name, updates, deletes,
                                   bool(body.validate_only))

            code, message, _ = await self._guarded(
                session, auth.admin_route("PUT", f"/topics/{name}/configs"), alter)
            return cls.AlterConfigsResourceResponse(error_code=code, error_message=message,
                                                    resource_type=kind, resource_name=name)

        results = await asyncio.gather(*(one(r) for r in body.resources))
        return cls(throttle_time_ms=0, responses=list(results))

    # ---- records --------------------------------------------------------------------------

    async def delete_records(self, session: Session, request: Request) -> Any:
        cls = response_class(ApiKey.DeleteRecords, request.api_version)
        topic_cls = cls.DeleteRecordsTopicResult

        async def one(topic: str, partition: int, offset: int) -> Any:
            async def delete() -> int:
                return int(await self.gw.call(self.gw.engine.delete_records, topic, partition,
                                              offset))

            route = ("POST", f"/v1/topics/{topic}/partitions/{partition}/delete-records")
            code, _, low = await self._guarded(session, route, delete)
            return topic_cls.DeleteRecordsPartitionResult(
                partition_index=partition, error_code=code,
                low_watermark=-1 if low is None else low)

        topics = []
        for t in request.body.topics:
            parts = await asyncio.gather(*(one(t.name, p.partition_index, p.offset)
                                           for p in t.partitions))
            topics.append(topic_cls(name=t.name, partitions=list(parts)))
        return cls(throttle_time_ms=0, topics=topics)


def _topic_configs(cls: Any, desc: TopicDescription) -> list[Any]:
    return [cls(name=k, value=v, read_only=False, is_sensitive=False,
                config_source=SOURCE_DYNAMIC_TOPIC if k in desc.overrides else SOURCE_DEFAULT)
            for k, v in sorted(desc.config.items())]
