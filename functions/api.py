"""The three Lambda handlers behind the HTTP API (API Gateway HTTP API, payload 2.0).

- ``admin_handler``: REST Proxy v3 clusters, topics, partitions, configs and consumer
  groups (read-only), the native group administration (list, reset, delete), open
  transactions, and the deployment's direct endpoint (``GET /v1/deployment``);
- ``produce_handler``: v3 records and ``records:batch``, the native batch append,
  producer ids and transactions (init, begin, commit, abort);
- ``consume_handler``: the native fetch (long-poll), offsets and topic metadata, the
  native group membership routes (``/v1/groups/...``), and REST Proxy v2 consumer
  instances (assignments, subscriptions, offset commits).
- ``archiver_handler``: tiered storage. EventBridge invokes it on a schedule (an archiver
  and retention pass); its HTTP routes run the same on demand, and delete records.
- ``dispatcher_handler``: triggers and sinks (no HTTP routes): DynamoDB stream batches,
  wake-ups and activation (``functions.dispatcher``).

Each is a Powertools ``APIGatewayHttpResolver`` with request validation, wrapped in
Logger, Metrics and Tracer. :func:`routes` lists every route key (``"GET /v3/clusters"``)
with its handler: the local gateway and the CDK stack both build their routes from it.

Example:
    >>> functions.api.admin_handler(event, context)["statusCode"]   # doctest: +SKIP
    200
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from . import (
    deployment,
    native,
    native_groups,
    native_txn,
    tiered,
    v2,
    v2_subscriptions,
    v3_admin,
    v3_configs,
    v3_groups,
    v3_produce,
)
from . import dispatcher as _dispatcher
from ._access import bound_grants
from ._resolver import StreamletResolver
from ._runtime import bound_engine, local_mode, logger, metrics, tracer

__all__ = ["admin_handler", "apps", "archiver_handler", "bound_engine", "bound_grants",
           "consume_handler", "dispatcher_handler", "local_mode", "produce_handler", "routes"]

Handler = Callable[[Mapping[str, Any], Any], dict[str, Any]]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _app(*routers: Any) -> StreamletResolver:
    app = StreamletResolver()
    for router in routers:
        app.include_router(router)
    return app


admin_app = _app(v3_configs.router, v3_admin.router, v3_groups.router,
                 native_groups.admin_router, native_txn.admin_router, deployment.router)
produce_app = _app(v3_produce.router, native.produce_router, native_txn.router)
consume_app = _app(native.consume_router, native_groups.consume_router, v2.router,
                   v2_subscriptions.router)
archiver_app = _app(tiered.router)


def _drop_disabled_metrics() -> None:
    if is_metrics_disabled():
        metrics.clear_metrics()  # Powertools keeps disabled metrics until 100 pile up


def _handler(app: StreamletResolver) -> Handler:
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        _drop_disabled_metrics()
        response = app.resolve(event, context)
        status = int(response.get("statusCode", 500))
        kind = "ServerErrors" if status >= 500 else "ClientErrors" if status >= 400 else "Ok"
        metrics.add_metric(name=f"Requests{kind}", unit=MetricUnit.Count, value=1)
        return response

    return handle


admin_handler = _handler(admin_app)
"""Lambda entry point: REST Proxy v3 administration and native group administration."""
produce_handler = _handler(produce_app)
"""Lambda entry point: v3 records, records:batch, native batch append, producer ids."""
consume_handler = _handler(consume_app)
"""Lambda entry point: native fetch/offsets/metadata/groups and REST Proxy v2 consumers."""
_archiver_http = _handler(archiver_app)


@logger.inject_lambda_context
@metrics.log_metrics
def _scheduled(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    _drop_disabled_metrics()
    return tiered.scheduled_pass()


def archiver_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: a scheduled archiver pass (EventBridge), or the HTTP routes."""
    if event.get("detail-type") == "Scheduled Event":
        result: dict[str, Any] = _scheduled(event, context)
        return result
    return _archiver_http(event, context)


@logger.inject_lambda_context
@metrics.log_metrics
def dispatcher_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: the trigger dispatcher (stream batches, wake-ups, activation)."""
    _drop_disabled_metrics()
    return _dispatcher.handle(event, context)


def apps() -> dict[str, tuple[StreamletResolver, Handler]]:
    """Each handler's name, resolver and entry point."""
    return {"admin_handler": (admin_app, admin_handler),
            "produce_handler": (produce_app, produce_handler),
            "consume_handler": (consume_app, consume_handler),
            "archiver_handler": (archiver_app, archiver_handler)}


@functools.cache
def openapi(app: StreamletResolver) -> dict[str, Any]:
    """One resolver's OpenAPI document, as a dict."""
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema(
        title="Streamlet HTTP API", version="1"))
    return document


def routes() -> list[tuple[str, str]]:
    """``(route key, handler name)`` of every route.

    Example:
        >>> ("GET /v3/clusters", "admin_handler") in routes()
        True
    """
    out = []
    for name, (app, _) in apps().items():
        for path, item in openapi(app).get("paths", {}).items():
            out += [(f"{method.upper()} {path}", name) for method in item if method in METHODS]
    return out
