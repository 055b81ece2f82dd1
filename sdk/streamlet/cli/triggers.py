"""``streamlet local --trigger TOPIC=module:function[?setting=value&...]``: run local
Python handlers as the topic's trigger, with the events they will get from Lambda; and
``--sink TOPIC=KIND:TARGET[?setting=value&...]`` (``s3:BUCKET``, ``firehose:STREAM``,
``eventbridge:BUS``, ``sqs:QUEUE_URL``) to deliver a topic into the local platform's
emulated services.

Settings are :class:`~streamlet.triggers.Trigger`'s (``batch_size``,
``maximum_batching_window_ms``, ``starting_position``, ``bisect_batch_on_function_error``,
``maximum_retry_attempts``, ``maximum_record_age_s``, ``report_batch_item_failures``,
``key_filter``, ``group_id``, ``name``, and ``on_failure`` naming a dead-letter topic).

Example:
    >>> parse_trigger("orders=app.handlers:billing?batch_size=10&on_failure=orders.dlq").name
    'orders.app.handlers.billing'
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..errors import InvalidConfig, InvalidRequest
from ..triggers.config import TopicDestination, Trigger
from .common import CliError, stderr

if TYPE_CHECKING:
    from ..local import LocalPlatform
    from ..triggers.local import LocalTriggers

_BOOLEANS = {"bisect_batch_on_function_error", "report_batch_item_failures"}
_INTEGERS = {"batch_size", "maximum_batching_window_ms", "maximum_retry_attempts",
             "maximum_record_age_s", "starting_position_timestamp_ms"}
_TEXT = {"starting_position", "key_filter", "group_id", "name"}


def _value(name: str, text: str) -> Any:
    if name in _BOOLEANS:
        if text.lower() not in ("true", "false", "1", "0"):
            raise CliError(f"--trigger setting {name}={text!r}: true or false.")
        return text.lower() in ("true", "1")
    if name in _INTEGERS:
        try:
            return int(text)
        except ValueError:
            raise CliError(f"--trigger setting {name}={text!r}: an integer.") from None
    if name == "on_failure":
        return TopicDestination(text)
    if name in _TEXT:
        return text
    raise CliError(f"Unknown --trigger setting {name!r} (one of "
                   f"{', '.join(sorted(_BOOLEANS | _INTEGERS | _TEXT | {'on_failure'}))}).")


def parse_trigger(spec: str) -> Trigger:
    """``TOPIC=module:function[?setting=value&...]`` -> a Trigger (CliError if bad)."""
    topic, equals, rest = spec.partition("=")
    function, _, query = rest.partition("?")
    if not equals or ":" not in function:
        raise CliError(f"--trigger takes TOPIC=module:function, not {spec!r}.")
    settings = {name: _value(name, text) for name, text in
                parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))}
    name = settings.pop("name", None) or re.sub(r"[^A-Za-z0-9._-]", "-",
                                                f"{topic}.{function.replace(':', '.')}")[:64]
    try:
        return Trigger(name, topic, function=function, **settings)
    except (InvalidConfig, InvalidRequest, ValueError) as error:
        raise CliError(f"--trigger {spec}: {error}") from None


_SINK_TARGETS = {"s3": "bucket", "firehose": "delivery_stream", "eventbridge": "event_bus",
                 "sqs": "queue_url"}
_SINK_SETTINGS = {"prefix", "source", "detail_type", "body"}


def parse_sink(spec: str) -> Trigger:
    """``TOPIC=KIND:TARGET[?setting=value&...]`` -> a sink trigger (CliError if bad).

    Example:
        >>> parse_sink("orders=s3:lake?prefix=raw/").sink
        {'kind': 's3', 'bucket': 'lake', 'prefix': 'raw/'}
    """
    topic, equals, rest = spec.partition("=")
    kind, colon, target_query = rest.partition(":")
    target, _, query = target_query.partition("?")
    if not equals or not colon or kind not in _SINK_TARGETS or not target:
        raise CliError(f"--sink takes TOPIC=KIND:TARGET with KIND one of "
                       f"{', '.join(_SINK_TARGETS)}, not {spec!r}.")
    sink: dict[str, str] = {"kind": kind, _SINK_TARGETS[kind]: target}
    settings: dict[str, Any] = {"starting_position": "TRIM_HORIZON"}
    for name, text in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if name in _SINK_SETTINGS:
            sink[name] = text
        else:
            settings[name] = _value(name, text)
    name = settings.pop("name", None) or re.sub(r"[^A-Za-z0-9._-]", "-", f"{topic}.{kind}")
    try:
        return Trigger(name[:64], topic, sink=sink, **settings)
    except (InvalidConfig, InvalidRequest, ValueError) as error:
        raise CliError(f"--sink {spec}: {error}") from None


def parse_triggers(specs: list[str], sinks: list[str] | None = None) -> list[Trigger]:
    triggers = [parse_trigger(spec) for spec in specs] + [parse_sink(s) for s in sinks or []]
    if len({t.name for t in triggers}) != len(triggers):
        raise CliError("Two --trigger options make the same trigger name: add ?name=... .")
    return triggers


def start_triggers(platform: LocalPlatform, triggers: list[Trigger]) -> LocalTriggers:
    """Import each handler (from the current directory too) and start delivering."""
    from ..triggers.local import LocalTriggers
    from ..triggers.targets import load_handler

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    runner = LocalTriggers(platform.engine(), platform.client("dynamodb"),
                           platform.client("dynamodbstreams"), client_factory=platform.client)
    for trigger in triggers:
        if trigger.sink is not None:
            runner.add(trigger)
            target = f"{trigger.sink['kind']} sink"
        else:
            try:
                handler = load_handler(trigger.function or "")
            except (ImportError, AttributeError, ValueError) as error:
                raise CliError(f"--trigger {trigger.topic}={trigger.function}: cannot load "
                               f"the handler ({type(error).__name__}: {error}).") from None
            runner.add(trigger, handler=handler)
            target = trigger.function or ""
        stderr().print(f"Trigger {trigger.name}: {trigger.topic} -> {target} "
                       f"(group {trigger.group}, {trigger.starting_position})", markup=False)
    return runner.start()
