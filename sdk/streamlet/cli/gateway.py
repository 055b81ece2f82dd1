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


def _engine(url: str) -> Engine:
    from ..engine import Engine
    from ..transport.endpoint import connect

    transport = connect(url) if urlsplit(url).scheme.startswith("direct") else None
    if not isinstance(transport, Engine):
        raise CliError(f"The gateway serves the engine itself: give a direct:// or "
                       f"direct+http:// endpoint, not {url!r}.")
    return transport


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
        "--endpoint", "-b", help="The Streamlet endpoint to serve (direct:// or "
        "direct+http://); default: the global --endpoint / $STREAMLET_ENDPOINT.")] = None,
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
    """
    from ..kafka import KafkaGateway

    if auth not in AUTH_MODES:
        raise CliError(f"--auth is one of {', '.join(AUTH_MODES)}, not {auth!r}.")
    url = endpoint_option or endpoint(ctx)
    adv_host, adv_port = _address(advertise)
    authenticator = iam_authenticator(url, audience, region, grants_path) \
        if auth == "iam" else None
    server = KafkaGateway(_engine(url), host=host, port=port, advertised_host=adv_host,
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
