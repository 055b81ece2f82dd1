"""The local HTTP gateway: API Gateway's HTTP API on 127.0.0.1, running the real handlers.

Each request is checked like API Gateway's IAM authorization: a SigV4 signature for
``execute-api`` in this gateway's region, for one of its own host names, by a known key,
dated within 5 minutes (:mod:`.sigv4`); then the signer's identity policies must allow
``execute-api:Invoke`` on the route's ARN
(``arn:aws:execute-api:us-east-1:000000000000:local/$default/METHOD/path``, evaluated by
:mod:`streamlet.policy`). A request that fails either gets 403 and no handler runs.

A :class:`Principal` is an access key, its secret and its policies; the default one, the
local credentials, may invoke every route (an administrator), so clients that know
nothing of principals keep working. A signed request becomes an HTTP API payload 2.0 event
for the route it matches (route keys come from ``functions.api.routes()``, the same
definitions the Lambda resolvers use), with the caller in
``requestContext.authorizer.iam`` as API Gateway puts it; the handler runs in-process
with the callers' policies bound (``functions.api.bound_grants``) so it checks the topics
a body names against the same grants, and its result becomes the HTTP response.

Example:
    >>> with LocalPlatform() as platform:                           # doctest: +SKIP
    ...     url = platform.start_gateway()   # http://127.0.0.1:PORT
    ...     Admin(url).list_topics()
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Self
from urllib.parse import unquote

from ..policy import evaluate, execute_api_arn
from .principals import ADMIN_POLICY, CallerPolicies, Principal, default_principals
from .serving import serve, stop_serving
from .sigv4 import LOCAL_ACCOUNT, REGION, Caller, SignatureRejected, SigV4Verifier, gateway_hosts

__all__ = ["ADMIN_POLICY", "Gateway", "Principal", "SigV4Verifier", "http_api_event"]

log = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
"""API Gateway HTTP API's request payload limit."""
TEXT_TYPES = ("application/json", "application/xml", "application/x-www-form-urlencoded",
              "application/javascript")
API_ID = "local"
STAGE = "$default"
# ---- routes and events -------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    key: str
    method: str
    pattern: re.Pattern[str]
    handler: str
    static_segments: int


def _route(key: str, handler: str) -> _Route:
    method, template = key.split(" ", 1)
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    static = sum(1 for s in template.split("/") if s and not s.startswith("{"))
    return _Route(key, method, re.compile(f"^{regex}$"), handler, static)


def _route_table(keys: Iterable[tuple[str, str]]) -> list[_Route]:
    """Most specific first, as API Gateway matches (more literal segments win)."""
    return sorted((_route(k, h) for k, h in keys), key=lambda r: -r.static_segments)


@dataclass
class LocalLambdaContext:
    """The parts of a Lambda context the handlers (and Powertools) read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    log_group_name: str = "/aws/lambda/streamlet-local"
    log_stream_name: str = "local"
    timeout_s: float = 29.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    return kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith(("+json", "+xml"))


def _encoded_body(body: bytes, content_type: str) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if _is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def http_api_event(route: _Route, params: Mapping[str, str], method: str, raw_uri: str,
                   headers: Mapping[str, str], query: Mapping[str, list[str]], body: bytes,
                   source_ip: str, caller: Caller | None = None) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for one request; ``caller``
    goes into ``requestContext.authorizer.iam`` as API Gateway's IAM authorizer puts it."""
    raw_path, _, raw_query = raw_uri.partition("?")
    text, is_b64 = _encoded_body(body, headers.get("content-type", ""))
    context = _request_context(route, method, raw_path, headers, source_ip)
    if caller is not None:
        context["authorizer"] = {"iam": _iam_identity(caller)}
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route.key, "rawPath": raw_path,
        "rawQueryString": raw_query, "headers": dict(headers), "isBase64Encoded": is_b64,
        "requestContext": context}
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    if params:
        event["pathParameters"] = dict(params)
    if text is not None:
        event["body"] = text
    return event


def _iam_identity(caller: Caller) -> dict[str, Any]:
    user_id = f"AIDA{caller.access_key.upper()}"[:21]
    return {"accessKey": caller.access_key, "accountId": LOCAL_ACCOUNT, "callerId": user_id,
            "cognitoIdentity": None, "principalOrgId": None, "userArn": caller.principal,
            "userId": user_id}


def _request_context(route: _Route, method: str, raw_path: str, headers: Mapping[str, str],
                     source_ip: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    host = headers.get("host", "")
    return {"accountId": LOCAL_ACCOUNT, "apiId": API_ID, "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": route.key, "stage": STAGE,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000)}


# ---- the WSGI app and its server ---------------------------------------------------------


HANDLERS_MODULE = "streamlet._functions.api"
"""The Lambda handlers as the installed package ships them: the repository's
``functions/`` directory, packaged as ``streamlet._functions`` (see sdk/pyproject.toml),
so an installed ``streamlet[local]`` serves the HTTP API without a source checkout."""


def load_handlers(module: str = HANDLERS_MODULE) -> ModuleType:
    """Import the handlers' module (it needs the ``local`` extra: Powertools, pydantic)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise RuntimeError(f"Cannot import the HTTP handlers ({module}: {e}); install the "
                           "local extra: pip install 'streamlet[local]'.") from e


class Gateway:
    """Serves the HTTP API on ``host:port`` by invoking the Lambda handlers in-process.

    ``engine`` serves every request (bound per request, so tests of the handlers keep
    their own); ``direct_endpoint`` reaches its storage from this machine (what
    ``GET /v1/deployment`` answers; without it that route fails). ``credentials`` maps
    access keys to secrets of administrators (default: the local credentials);
    ``principals`` adds principals with their own policies.
    """

    def __init__(self, engine: Any, *, host: str = "127.0.0.1", port: int = 0,
                 credentials: Mapping[str, str] | None = None,
                 principals: Iterable[Principal] = (),
                 handlers: str = HANDLERS_MODULE, direct_endpoint: str | None = None) -> None:
        self.engine = engine
        self.direct_endpoint = direct_endpoint
        self.host = host
        self._requested_port = port
        self.principals = {p.access_key: p for p in
                           (*default_principals(credentials), *principals)}
        self._grants = CallerPolicies({p.arn: p.policies for p in self.principals.values()})
        self.verifier = self._verifier(None)
        self._module = load_handlers(handlers)
        self._module.local_mode()  # no EMF metrics on stdout
        self._routes = _route_table(self._module.routes())
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the endpoint SDK clients and curl use."""
        if self._server is None:
            raise RuntimeError("The gateway is not started.")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def _verifier(self, port: int | None) -> SigV4Verifier:
        """API Gateway's SigV4 rules for this gateway's keys, region and (once bound) hosts."""
        keys = self.principals.values()
        return SigV4Verifier({p.access_key: p.secret_key for p in keys}, region=REGION,
                             hosts=None if port is None else gateway_hosts(self.host, port),
                             principals={p.access_key: p.arn for p in keys})

    def start(self) -> Self:
        """Serve on a background thread (port 0 picks a free port; see :attr:`url`).

        The verifier learns the port here, so it accepts only this gateway's own Host.
        """
        self._server, self._thread = serve(self, self.host, self._requested_port,
                                           "streamlet-gateway")
        self.verifier = self._verifier(int(self._server.server_address[1]))
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        stop_serving(self._server, self._thread)
        self._server = self._thread = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        response = self.respond(Request(environ))
        return response(environ, start_response)  # type: ignore[no-any-return]

    def respond(self, request: Any) -> Any:
        """The response to one werkzeug request: 403, 404, 413 or the handler's answer."""
        from werkzeug.exceptions import RequestEntityTooLarge
        from werkzeug.wrappers import Response

        request.max_content_length = MAX_PAYLOAD_BYTES
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            return _json_response(Response, 413, {"message": "Request Entity Too Large",
                                                  "error_code": 41301, "code": "too_large"})
        raw_uri = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
        headers = _joined_headers(request.headers.items())
        try:
            caller = self.verifier.verify(request.method, raw_uri, headers, body)
        except SignatureRejected as refused:
            return _forbidden(Response, str(refused))
        return self._dispatch(Response, request, raw_uri, headers, body, caller)

    def _dispatch(self, response_class: Any, request: Any, raw_uri: str,
                  headers: dict[str, str], body: bytes, caller: Caller) -> Any:
        path = raw_uri.partition("?")[0]
        for route in self._routes:
            found = route.pattern.match(path)
            if route.method == request.method and found:
                denied = self._authorize(caller, request.method, path)
                if denied is not None:
                    return _forbidden(response_class, denied)
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                headers = {**headers, "x-forwarded-proto": "http",
                           "x-forwarded-for": request.remote_addr or "127.0.0.1"}
                event = http_api_event(route, params, request.method, raw_uri, headers,
                                       request.args.to_dict(flat=False), body,
                                       request.remote_addr or "127.0.0.1", caller)
                return self._invoke(response_class, route, event)
        return _json_response(response_class, 404, {"message": "Not Found", "error_code": 404,
                                                     "code": "not_found"})

    def _authorize(self, caller: Caller, method: str, raw_path: str) -> str | None:
        """None if the caller's policies allow invoking the route, else why not."""
        arn = execute_api_arn(REGION, LOCAL_ACCOUNT, API_ID, STAGE, method, unquote(raw_path))
        decision = evaluate(self._grants.by_caller.get(caller.principal, ()),
                            "execute-api:Invoke", arn)
        if decision.allowed:
            return None
        return (f"User: {caller.principal} is not authorized to perform: execute-api:Invoke "
                f"on resource: {arn} ({decision.describe()})")

    def _invoke(self, response_class: Any, route: _Route, event: dict[str, Any]) -> Any:
        handler = getattr(self._module, route.handler)
        try:
            with self._module.bound_engine(self.engine, self.direct_endpoint), \
                    self._module.bound_grants(self._grants):
                result = handler(event, LocalLambdaContext(route.handler))
        except Exception:
            log.exception("handler %s failed on %s", route.handler, route.key)
            return _json_response(response_class, 500, {"message": "Internal Server Error"})
        return _lambda_response(response_class, result)


def _forbidden(response_class: Any, reason: str) -> Any:
    return _json_response(response_class, 403, {"message": f"Forbidden: {reason}",
                                                "error_code": 40301, "code": "access_denied"})


def _joined_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names; repeated headers joined with commas, as API Gateway does."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _json_response(response_class: Any, status: int, body: dict[str, Any]) -> Any:
    return response_class(json.dumps(body), status=status, content_type="application/json")


def _lambda_response(response_class: Any, result: Any) -> Any:
    """An HTTP response from a Lambda proxy result (a bare value is a 200 JSON body)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _json_response(response_class, 200, result)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    response = response_class(data, status=int(result["statusCode"]))
    response.headers.remove("Content-Type")
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    return response
