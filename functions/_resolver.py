"""The resolver every handler uses: Powertools' HTTP API resolver, made safe for threads,
with Streamlet's error bodies.

Powertools keeps the current event in class attributes: fine in Lambda (one event per
process at a time), wrong in the local gateway, which serves requests on threads. Here
the request state lives in a ContextVar, as in Powertools' own ``HttpResolverLocal``.

Every error leaves as ``{"error_code": int, "message": str, "code": str}``: a
``StreamletError`` with its status and REST Proxy code; request validation failures
as 400/40002; never a 5xx for a client's mistake.

JSON bodies are parsed strictly (:func:`strict_json`): NaN, Infinity and numbers that
overflow to them, and lone surrogates in keys or values are 400; a body without a
Content-Type is 415, never guessed to be JSON.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from streamlet.errors import InvalidRequest, StreamletError

from ._runtime import MAX_BODY_BYTES, MAX_HEADER_BYTES, logger

JSON = "application/json"


@dataclass
class _State:
    event: Any = None
    lambda_context: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    frames: list[str] = field(default_factory=list)


class StreamletResolver(APIGatewayHttpResolver):
    """``APIGatewayHttpResolver`` with per-request state in a ContextVar and our error bodies.

    Example:
        >>> app = StreamletResolver()
        >>> app.include_router(router)                     # doctest: +SKIP
        >>> app.resolve(event, context)["statusCode"]      # doctest: +SKIP
        200
    """

    def __init__(self) -> None:
        self._startup = _State()
        self._state_var: ContextVar[_State | None] = ContextVar("request", default=None)
        super().__init__(enable_validation=True, response_validation_error_http_code=500,
                         json_body_deserializer=strict_json)
        for exc_class, handler in _HANDLERS.items():
            self.exception_handler(exc_class)(handler)

    @property
    def _state(self) -> _State:
        return self._state_var.get() or self._startup

    @property
    def current_event(self) -> Any:
        return self._state.event

    @current_event.setter
    def current_event(self, value: Any) -> None:
        self._state.event = value

    @property
    def lambda_context(self) -> Any:
        return self._state.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._state.lambda_context = value

    @property
    def context(self) -> dict[str, Any]:
        return self._state.context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._state.context = value

    @property
    def processed_stack_frames(self) -> list[str]:
        return self._state.frames

    @processed_stack_frames.setter
    def processed_stack_frames(self, value: list[str]) -> None:
        self._state.frames = value

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Route one API Gateway HTTP API (payload 2.0) event; oversized requests get 413/431."""
        refused = _refuse_oversized(event)
        if refused is not None:
            return refused
        event = _json_content_type(event)
        state = _State(self._to_proxy_event(dict(event)), context, dict(self._startup.context))
        token = self._state_var.set(state)
        try:
            return self._build_response(self._resolve())
        finally:
            self._state_var.reset(token)


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses what is not interoperable JSON (InvalidRequest).

    Example:
        >>> strict_json('{"offset": NaN}')
        Traceback (most recent call last):
        streamlet.errors.InvalidRequest: The JSON body holds NaN: not a JSON number.
    """
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    _refuse_lone_surrogates(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest(f"The JSON body holds {name}: not a JSON number.")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidRequest(f"The JSON number {text[:40]} is out of range.")
    return number


def _refuse_lone_surrogates(value: Any) -> None:
    """Every string (keys too) must be encodable as UTF-8: no lone ``\\ud800``."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest("The JSON body holds a lone surrogate (an unpaired "
                                     "\\uD800-\\uDFFF escape): not valid Unicode.") from None


def error_body(status: int, error_code: int, message: str, code: str) -> Response[str]:
    """A REST Proxy style error response."""
    body = {"error_code": error_code, "message": message, "code": code}
    return Response(status_code=status, content_type=JSON, body=json.dumps(body))


def _streamlet_error(error: StreamletError) -> Response[str]:
    if error.status >= 500:
        logger.warning("request failed", error=error.code, detail=error.message)
    return error_body(error.status, error.error_code, error.message, error.code)


def _validation_error(error: RequestValidationError | ValidationError) -> Response[str]:
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e.get('msg', e['type'])}"
                for e in error.errors()]
    return _invalid("Invalid request: " + "; ".join(problems[:10]))


def _invalid(message: str) -> Response[str]:
    return error_body(400, InvalidRequest.error_code, message, InvalidRequest.code)


def _undecodable(error: Exception) -> Response[str]:
    return _invalid(f"The request body cannot be decoded ({type(error).__name__}).")


def _too_deep(error: RecursionError) -> Response[str]:
    return _invalid("The request body is nested too deeply.")


def _unsupported(error: RequestUnsupportedContentType) -> Response[str]:
    return error_body(415, 41501, "Unsupported or missing Content-Type: send the JSON body "
                      "as application/json.", "unsupported_media_type")


def _bad_response(error: ResponseValidationError) -> Response[str]:
    logger.error("response failed validation", errors=str(error.errors())[:2000])
    return error_body(500, 50001, "Internal error: the response failed validation.",
                      "internal_error")


def _internal(error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return error_body(500, 50001, f"Internal error ({type(error).__name__}).", "internal_error")


def _not_found(error: NotFoundError) -> Response[str]:
    return error_body(404, 404, "Not Found: no such route.", "not_found")


_HANDLERS: dict[type[Exception], Any] = {
    StreamletError: _streamlet_error,
    RequestValidationError: _validation_error,
    ValidationError: _validation_error,
    UnicodeDecodeError: _undecodable,
    binascii.Error: _undecodable,
    RecursionError: _too_deep,
    RequestUnsupportedContentType: _unsupported,
    NotFoundError: _not_found,
    ResponseValidationError: _bad_response,
    Exception: _internal,
}


def _refuse_oversized(event: Mapping[str, Any]) -> dict[str, Any] | None:
    headers = event.get("headers") or {}
    header_bytes = sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())
    if header_bytes > MAX_HEADER_BYTES:
        return _raw(431, 43101, f"Request headers of {header_bytes} bytes exceed "
                    f"{MAX_HEADER_BYTES} bytes.", "headers_too_large")
    body = event.get("body") or ""
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body)
    if size > MAX_BODY_BYTES:
        return _raw(413, 41301, f"The request body of {size} bytes exceeds the "
                    f"{MAX_BODY_BYTES}-byte limit.", "record_too_large")
    return None


def _raw(status: int, error_code: int, message: str, code: str) -> dict[str, Any]:
    body = json.dumps({"error_code": error_code, "message": message, "code": code})
    return {"statusCode": status, "body": body, "isBase64Encoded": False,
            "headers": {"Content-Type": JSON}}


def _json_content_type(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """REST Proxy clients send ``application/vnd.kafka.v2+json``: validate it as JSON.

    Form bodies are refused (415): every body here is JSON or one record batch. A body
    without a Content-Type is refused too (415 on routes that take JSON), never parsed.
    """
    headers = event.get("headers") or {}
    content_type = str(headers.get("content-type", "")).split(";")[0].strip().lower()
    if not content_type and event.get("body"):
        return {**event, "headers": {**headers, "content-type": "application/x-missing"}}
    if content_type.startswith("application/") and content_type.endswith("+json"):
        return {**event, "headers": {**headers, "content-type": JSON}}
    if content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        return {**event, "headers": {**headers, "content-type": "application/x-unsupported"}}
    return event
