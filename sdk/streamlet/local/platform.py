"""The embedded local platform: moto in server mode on 127.0.0.1, serialized.

moto does not make conditional writes atomic under concurrent requests (8 threads x 100
compare-and-set increments lost updates here), so every request passes through one lock:
the local platform behaves like DynamoDB's per-item atomicity, not like a racy fake.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload
from urllib.parse import urlencode

from ..engine import Engine, Names
from ..engine.aws import RETRIES
from ..errors import StreamletError
from ..transport.direct import direct_endpoint
from .credentials import LOCAL_CREDENTIALS, REGION
from .serving import WSGIApp, serve, stop_serving

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from .principals import Principal


class SerializedApp:
    """WSGI middleware that lets one request at a time into the wrapped app."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> list[bytes]:
        with self.lock:
            body = self.app(environ, start_response)
            try:
                return list(body)  # the response is produced entirely under the lock
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                forget_dynamodb_copies()


def forget_dynamodb_copies() -> None:
    """Drop moto's references to every DynamoDB model object it ever created.

    moto tracks each instance for its dashboard, and ``TransactWriteItems`` deep-copies
    every table it touches as a rollback backup, so without this each append keeps a
    full copy of the log table alive: 2,000 appends took a process from 111 MB to 5.2 GB.
    The live tables stay referenced by their backends and are unaffected.
    """
    from moto.core.model_instances import model_data

    for model in model_data.get("dynamodb", {}).values():
        tracked = getattr(model, "instances_tracked", None)
        if tracked:
            tracked.clear()


def moto_app(serialize: bool = True) -> WSGIApp:
    """moto's server-mode WSGI app, wrapped in the serializing lock unless told not to."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from . import motofix

    motofix.install()
    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    return SerializedApp(app) if serialize else app


class LocalPlatform:
    """moto on 127.0.0.1 with Streamlet's tables and bucket created from the schema.

    Example:
        >>> with LocalPlatform() as platform:                      # doctest: +SKIP
        ...     Admin(platform.endpoint).create_topic("orders", 3)
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", names: Names | None = None,
                 serialize: bool = True) -> None:
        self.host = host
        self.names = names or Names()
        self._requested_port = port
        self._serialize = serialize
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._gateway: Any = None
        self._archiver: threading.Thread | None = None
        self._archiver_stop = threading.Event()

    def start(self) -> Self:
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        self._server, self._thread = serve(moto_app(self._serialize), self.host,
                                           self._requested_port, "streamlet-local",
                                           request_handler=MotoRequestHandler)
        self.engine().provision(self.client("s3"))
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The local platform is not started.")
        return int(self._server.server_address[1])

    @property
    def aws_endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The STREAMLET_ENDPOINT value for SDK and CLI clients (the bucket is named when
        it is not the ``PREFIX-data`` that a direct endpoint assumes)."""
        suffix = "" if self.names.prefix == "streamlet" else f"/{self.names.prefix}"
        if self.names.bucket != f"{self.names.prefix}-data":
            suffix += f"?{urlencode({'bucket': self.names.bucket})}"
        return f"direct+http://{self.host}:{self.port}{suffix}"

    @property
    def direct_endpoint(self) -> str:
        """:attr:`endpoint` with the bucket and region spelled out
        (``direct+http://HOST:PORT/PREFIX?bucket=B&region=us-east-1``): what the HTTP
        gateway's ``GET /v1/deployment`` answers."""
        return direct_endpoint(self.names, REGION, self.aws_endpoint_url)

    def env(self) -> dict[str, str]:
        """Environment variables a client process needs to reach this platform."""
        key, secret = LOCAL_CREDENTIALS
        return {
            "STREAMLET_ENDPOINT": self.endpoint,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
        }

    @overload
    def client(self, service: Literal["dynamodb"], **config: Any) -> DynamoDBClient: ...

    @overload
    def client(self, service: Literal["s3"], **config: Any) -> S3Client: ...

    @overload
    def client(self, service: str, **config: Any) -> Any: ...

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for this platform (credentials and region set)."""
        import boto3
        from botocore.config import Config

        key, secret = LOCAL_CREDENTIALS
        make: Any = boto3.client
        return make(service, endpoint_url=self.aws_endpoint_url, region_name=REGION,
                    aws_access_key_id=key, aws_secret_access_key=secret,
                    config=Config(**{"retries": dict(RETRIES), **config}))

    def engine(self) -> Engine:
        return Engine(self.client("dynamodb"), self.client("s3"), self.names)

    def start_gateway(self, port: int = 0, credentials: dict[str, str] | None = None,
                      principals: Iterable[Principal] = ()) -> str:
        """Also serve the HTTP API (SigV4 and IAM checked) on 127.0.0.1; returns its URL.

        ``credentials`` maps administrators' access keys to secrets (default: the local
        pair); ``principals`` adds principals with their own policies. Starting it twice
        returns the running gateway's URL.
        """
        from .gateway import Gateway

        if self._gateway is None:
            self._gateway = Gateway(self.engine(), host=self.host, port=port,
                                    credentials=credentials, principals=principals,
                                    direct_endpoint=self.direct_endpoint).start()
        return str(self._gateway.url)

    @property
    def gateway(self) -> Any:
        """The running HTTP gateway (None before :meth:`start_gateway`)."""
        return self._gateway

    def start_archiver(self, interval_s: float = 60.0) -> None:
        """Run an archiver and retention pass every ``interval_s`` seconds (what the
        deployed stack's EventBridge schedule does), until :meth:`stop`."""
        if self._archiver is not None:
            return
        self._archiver_stop.clear()
        self._archiver = threading.Thread(target=self._archive_loop, args=(interval_s,),
                                          name="streamlet-archiver", daemon=True)
        self._archiver.start()

    def _archive_loop(self, interval_s: float) -> None:
        engine = self.engine()
        log = logging.getLogger("streamlet.archiver")
        while not self._archiver_stop.wait(interval_s):
            try:
                failures = engine.scheduled_pass()[2]
            except StreamletError as error:  # listing topics failed; the next pass retries
                failures = [str(error)]
            for failure in failures:  # the next pass redoes it, as on AWS
                log.warning("archiver pass: %s", failure)

    def stop_archiver(self) -> None:
        if self._archiver is not None:
            self._archiver_stop.set()
            self._archiver.join(timeout=30)
            self._archiver = None

    def stop(self) -> None:
        self.stop_archiver()
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        stop_serving(self._server, self._thread)
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Block until interrupted (``streamlet local``)."""
        if self._thread is None:
            raise RuntimeError("The local platform is not started.")
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
