"""``streamlet gateway``: the Kafka protocol gateway alone, in front of any Streamlet endpoint;
and the Kafka listener of ``streamlet local --kafka-port``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlsplit

import typer

from .common import CliError, endpoint, stderr

if TYPE_CHECKING:
    from ..engine import Engine
    from ..kafka import KafkaGateway
    from ..kafka.auth import Authenticator
    from ..local import LocalPlatform
    from ..local.principals import Principal

AUTH_MODES = ("iam", "none")
HTTP_SCHEMES = ("http", "https")
ASK_TIMEOUT_S = 15.0
PASS_DIRECT = ("pass its direct endpoint instead: --endpoint "
               "'direct://PREFIX?bucket=BUCKET&region=REGION' (the stack's DirectEndpoint "
               "output).")


def _engine(url: str) -> Engine:
    from ..engine import Engine
    from ..transport.endpoint import connect

    transport = connect(url) if urlsplit(url).scheme.startswith("direct") else None
    if not isinstance(transport, Engine):
        raise CliError(f"The gateway serves the engine itself: give a direct://, "
                       f"direct+http:// or http(s):// endpoint, not {url!r}.")
    return transport


def _storage_of(url: str) -> str:
    """The direct endpoint the gateway serves: ``url`` itself, or the one an HTTP API
    names (``GET /v1/deployment``, an administrator's route), said on stderr."""
    if urlsplit(url).scheme not in HTTP_SCHEMES:
        return url
    from ..errors import AccessDenied, StreamletError
    from ..transport.http import HttpTransport

    transport = HttpTransport(url, timeout=ASK_TIMEOUT_S)
    try:
        found = transport.direct_endpoint()
    except AccessDenied as error:
        raise CliError(f"{url} would not name its storage ({error.message.rstrip('.')}). "
                       "Asking it (GET /v1/deployment) takes an administrator's AWS "
                       f"credentials (grant_admin); or {PASS_DIRECT}") from None
    except StreamletError as error:  # no answer (unreachable, timed out) or a failure
        raise CliError(f"Cannot ask {url} for its storage: {error.message}") from None
    finally:
        transport.close()
    if found is None:
        raise CliError(f"{url} does not answer GET /v1/deployment (404): a deployment "
                       "older than that route, or not a Streamlet API; update the deployment "
                       f"(cdk deploy), or {PASS_DIRECT}")
    stderr().print(f"{url} keeps its data in {found}: the gateway serves that storage "
                   "directly, with this machine's AWS credentials.", markup=False)
    return found


def iam_authenticator(url: str, audience: str, region: str | None,
                      grants_path: str | None) -> Authenticator:
    """OAUTHBEARER with presigned STS tokens, policies from the grant registry."""
    import boto3

    from ..engine.grants import registry_path
    from ..kafka.auth import ApiArn, Authenticator, RegistryPolicies, StsVerifier

    parts = urlsplit(url)
    prefix = (parts.netloc if parts.scheme == "direct" else parts.path.strip("/")) \
        or "streamlet"
    region = region or parse_qs(parts.query).get("region", [None])[0] \
        or boto3.Session().region_name or "us-east-1"
    api = ApiArn(region=region, account="*", api_id="kafka")
    return Authenticator({"OAUTHBEARER": StsVerifier(audience)},
                         RegistryPolicies(grants_path or registry_path(prefix), api), api)


def gateway(
    ctx: typer.Context,
    endpoint_option: Annotated[str | None, typer.Option(
        "--endpoint", "-b", help="The Streamlet endpoint to serve: direct://, direct+http://, "
        "or a deployment's HTTP API (https://, http://), which names its storage; default: "
        "the global --endpoint / $STREAMLET_ENDPOINT.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Kafka port (0 picks a free one).")] = 9092,
    advertise: Annotated[str | None, typer.Option(
        "--advertise", metavar="HOST:PORT",
        help="What clients dial (the load balancer's name); default: --host:--port.")] = None,
    auth: Annotated[str, typer.Option(
        "--auth", help="iam: SASL/OAUTHBEARER with presigned sts:GetCallerIdentity tokens "
        "and the grant registry; none: no authentication (trusted networks, local tests).",
    )] = "iam",
    audience: Annotated[str, typer.Option(
        "--audience", help="The audience tokens must be signed for.")] = "streamlet",
    grants_path: Annotated[str | None, typer.Option(
        "--grants-path", help="SSM path of the grant registry (default "
        "/streamlet/PREFIX/grants).")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
) -> None:
    """Serve the Kafka protocol in front of a Streamlet deployment until interrupted.

    Kafka clients (kcat, kafka-python, aiokafka, confluent-kafka) then bootstrap from it.
    Stateless: run as many as you like behind one TCP load balancer, each advertising it.
    Given an HTTP API's URL, it asks the deployment where its tables and bucket are
    (GET /v1/deployment, an administrator's route) and serves them directly, with this
    machine's AWS credentials.
    """
    from ..kafka import KafkaGateway

    if auth not in AUTH_MODES:
        raise CliError(f"--auth is one of {', '.join(AUTH_MODES)}, not {auth!r}.")
    url = endpoint_option or endpoint(ctx)
    adv_host, adv_port = _address(advertise)
    storage = _storage_of(url)
    authenticator = iam_authenticator(storage, audience, region, grants_path) \
        if auth == "iam" else None
    server = KafkaGateway(_engine(storage), host=host, port=port, advertised_host=adv_host,
                          advertised_port=adv_port, authenticator=authenticator)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run() -> None:
        await server.start()
        typer.echo(f"Kafka gateway for {url} listening on {host}:{server.port} "
                   f"(advertised as {server.bootstrap}, auth: {auth}).", err=True)
        await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        stderr().print("Stopped.")


def _address(advertise: str | None) -> tuple[str | None, int | None]:
    if not advertise:
        return None, None
    host, _, port = advertise.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--advertise takes HOST:PORT, not {advertise!r}.")
    return host, int(port)


def start_local_kafka(platform: LocalPlatform, host: str, port: int,
                      principals: Iterable[Principal]) -> KafkaGateway:
    """``streamlet local --kafka-port``: no authentication needed (an administrator), or
    SASL/PLAIN with the local credentials or a ``--principal``'s key and secret (then its
    policies apply), or OAUTHBEARER with a token presigned against the platform's STS."""
    from ..kafka import KafkaGateway
    from ..kafka.auth import ApiArn, Authenticator, PlainVerifier, StaticPolicies, StsVerifier
    from ..local.credentials import LOCAL_CREDENTIALS
    from ..local.principals import default_principals

    everyone = [*default_principals(dict([LOCAL_CREDENTIALS])), *principals]
    authenticator = Authenticator(
        {"PLAIN": PlainVerifier({p.access_key: (p.secret_key, p.arn) for p in everyone}),
         "OAUTHBEARER": StsVerifier(endpoint=platform.aws_endpoint_url)},
        StaticPolicies({p.arn: p.policies for p in everyone}),
        ApiArn(account="000000000000", api_id="local"), optional=True)
    try:
        return KafkaGateway(platform.engine(), host=host, port=port,
                            authenticator=authenticator).start_background()
    except OSError as error:
        raise CliError(f"Cannot serve Kafka on {host}:{port}: {error.strerror or error}; "
                       "pass another --kafka-port (0 picks a free one).") from None
