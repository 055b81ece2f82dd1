"""What a trigger delivers to: a function (a Python callable locally, a Lambda function on
AWS) or a sink (:mod:`streamlet.triggers.sinks`), behind one small protocol.

A target turns a batch of one partition's records into an :class:`Answer`: every record
succeeded, or which failed (the whole batch, or from an offset on). A sink may also
*reject* records (the destination refused them for good: too large, malformed): those go
to the trigger's dead-letter destination and count as done. A target that could not be
reached at all (throttled, unavailable) raises ``TargetUnavailable``: the batch did not
reach the function, which costs no retry attempt, as with Lambda's own mappings.

Example:
    >>> target = FunctionTarget(lambda event, context: None, "streamlet://local")
    >>> target.deliver(Trigger("t", "orders", function="f"),
    ...                [Record("orders", 0, 0, None, b"v", [], 0)]).ok
    True
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..records import Record
from .config import Trigger
from .dlq import TargetUnavailable
from .event import MAX_PAYLOAD_BYTES, Answer, failed, kafka_event, read_answer

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Delivered:
    """A target's answer, plus records it refused for good (offset -> why)."""

    answer: Answer
    rejected: Mapping[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.answer.ok


class Target(Protocol):
    max_batch_bytes: int
    """The most bytes of records one delivery may carry (the event's limit for functions)."""
    pins_batches: bool
    """A retry after a crash must deliver exactly the same batch (an S3 object named by its
    offset range): the dispatcher records the range in the commit metadata first."""

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        """Deliver one partition's ``records`` (in offset order)."""
        ...


@dataclass
class LocalContext:
    """What Lambda passes as ``context``, for handlers run locally (Powertools' Logger and
    Tracer read these)."""

    function_name: str
    memory_limit_in_mb: int = 128
    timeout_s: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def load_handler(spec: str) -> Handler:
    """``module:function`` (``package.module:attr.attr``) -> the callable.

    Example:
        >>> load_handler("json:dumps")({"a": 1}, None)  # doctest: +SKIP
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"Expected module:function, not {spec!r}.")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise ValueError(f"{spec} is not callable.")
    handler: Handler = found
    return handler


class FunctionTarget:
    """A Python callable with Lambda's handler signature, invoked in process."""

    max_batch_bytes = MAX_PAYLOAD_BYTES
    pins_batches = False

    def __init__(self, handler: Handler, bootstrap_servers: str, name: str = "local") -> None:
        self._handler = handler
        self._bootstrap = bootstrap_servers
        self._name = name

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        event = kafka_event(records, self._bootstrap)
        try:
            payload = self._handler(event, LocalContext(self._name))
        except Exception as error:
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            return Delivered(failed(records, last))
        try:  # as on AWS, the answer crosses the wire as JSON
            payload = json.loads(json.dumps(payload, default=str))
        except (TypeError, ValueError):
            payload = None
        return Delivered(read_answer(payload, records, trigger.report_batch_item_failures))


class LambdaTarget:
    """A Lambda function invoked synchronously (``RequestResponse``), as Lambda's own
    event source mappings do."""

    max_batch_bytes = MAX_PAYLOAD_BYTES
    pins_batches = False

    def __init__(self, client: LambdaClient, function: str, bootstrap_servers: str) -> None:
        self._client = client
        self._function = function
        self._bootstrap = bootstrap_servers

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        payload = json.dumps(kafka_event(records, self._bootstrap)).encode()
        try:
            answer = self._client.invoke(FunctionName=self._function,
                                         InvocationType="RequestResponse", Payload=payload)
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            if code == "RequestTooLargeException":
                return Delivered(failed(records, f"payload too large: {error}"))
            raise TargetUnavailable(f"Invoking {self._function}: "
                                    f"{code or type(error).__name__}: {error}") from error
        body = answer["Payload"].read()
        if answer.get("FunctionError"):
            return Delivered(failed(records, _error_message(body)))
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return Delivered(read_answer(parsed, records, trigger.report_batch_item_failures))


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500].decode(errors="replace")
    if isinstance(data, Mapping):
        return f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"[:1000]
    return str(data)[:1000]
