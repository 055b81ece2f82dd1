"""Every route the handlers serve reaches the same function through the deployed API.

``functions.api.routes()`` is what the resolvers (and the local gateway) serve;
``infra.api.ROUTES`` is what API Gateway routes. A handler route with no API Gateway route,
or one that API Gateway would send to another function, would work locally and 404 (or
500) on AWS. This needs no synthesis: it matches route keys as API Gateway does.
"""

from __future__ import annotations

import re

from functions import api
from infra.api import ROUTES

SAMPLE = {"group": "billing", "topic": "orders", "partition": "0", "cluster_id": "streamlet",
          "name": "c1", "consumer": "m-1", "transactional_id": "enricher-1", "number": "3"}


def _concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.escape(path).replace(r"\{proxy\+\}", ".+")
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", regex) + "$")


def _api_gateway_target(method: str, path: str) -> str | None:
    """The function API Gateway picks: exact paths before greedy ones, a method before ANY."""
    matches = [(("{proxy+}" in p), m.value != method, name) for name, m, p in ROUTES
               if m.value in (method, "ANY") and _pattern(p).match(path)]
    return min(matches)[2] if matches else None


def test_every_handler_route_is_routed_to_its_function() -> None:
    for key, handler in api.routes():
        method, template = key.split(" ", 1)
        target = _api_gateway_target(method, _concrete(template))
        assert target is not None and f"{target}_handler" == handler, (key, target)


def test_explicit_routes_are_served_by_a_handler() -> None:
    served = {key for key, _ in api.routes()}
    for _, method, path in ROUTES:
        if "{proxy+}" not in path:
            assert f"{method.value} {path}" in served, (method, path)
