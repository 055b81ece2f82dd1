"""``streamlet local`` (a local platform for other shells) and ``streamlet demo``."""

from __future__ import annotations

import shlex
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import CliError, stderr, stdout
from .triggers import parse_triggers, start_triggers

if TYPE_CHECKING:
    from ..local import LocalPlatform
    from ..local.demo import DemoResult
    from ..local.principals import Principal

DEFAULT_PORT = 4566
DEFAULT_API_PORT = 4567
DEFAULT_ARCHIVE_INTERVAL_S = 60.0


def _announce_api(platform: LocalPlatform, api_port: int,
                  principals: list[Principal]) -> None:
    """Start the HTTP API gateway and say how to reach it (stderr), and how each extra
    principal signs (stdout, as comments beside the export lines)."""
    try:
        url = platform.start_gateway(port=api_port, principals=principals)
    except RuntimeError as error:  # the local extra (Powertools, pydantic) is missing
        stderr().print(f"HTTP API not started: {error}", markup=False)
        return
    for principal in principals:
        typer.echo(f"# principal {principal.name} ({principal.arn}): export "
                   f"AWS_ACCESS_KEY_ID={shlex.quote(principal.access_key)} "
                   f"AWS_SECRET_ACCESS_KEY={shlex.quote(principal.secret_key)}")
    sys.stdout.flush()
    stderr().print(f"HTTP API (SigV4 and IAM; the credentials above are an administrator): "
                   f"{url} — e.g. STREAMLET_ENDPOINT={url}, or curl --aws-sigv4 "
                   f"'aws:amz:us-east-1:execute-api' --user streamlet-local:streamlet-local "
                   f"{url}/v3/clusters", markup=False)


def _principals(specs: list[str]) -> list[Principal]:
    """``NAME=policy.json`` each; a clear error for a bad name, file or policy."""
    from ..local.principals import Principal

    out = []
    for spec in specs:
        name, equals, path = spec.partition("=")
        if not equals or not path:
            raise CliError(f"--principal takes NAME=policy.json, not {spec!r}.")
        try:
            out.append(Principal.from_file(name, path))
        except (OSError, ValueError) as error:
            raise CliError(f"--principal {spec}: {error}") from None
    if len({p.name for p in out}) != len(out):
        raise CliError("Each --principal needs its own NAME.")
    return out


def local(
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.",
    )] = DEFAULT_PORT,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(
        "--api-port", min=0, max=65535,
        help="Port of the HTTP API (the Lambda handlers, SigV4-checked); 0 picks a free one.",
    )] = DEFAULT_API_PORT,
    archive_interval: Annotated[float, typer.Option(
        "--archive-interval", min=0,
        help="Seconds between archiver and retention passes (0: only on demand, "
             "`streamlet admin archive`).",
    )] = DEFAULT_ARCHIVE_INTERVAL_S,
    principal: Annotated[list[str] | None, typer.Option(
        "--principal", metavar="NAME=POLICY.json",
        help="Add an HTTP API principal with this IAM identity policy (repeatable): access "
             "key NAME, a random secret printed at start; e.g. a grant's policy to test "
             "its scope. The default credentials stay an administrator.",
    )] = None,
    trigger: Annotated[list[str] | None, typer.Option(
        "--trigger", metavar="TOPIC=MODULE:FUNCTION[?SETTING=VALUE&...]",
        help="Invoke this Python handler with the topic's new records, as a Lambda trigger "
             "would (repeatable): the same Kafka event, batching, retries and commits to "
             "the trigger's consumer group; settings as in StreamletPlatform.add_trigger, "
             "e.g. ?batch_size=10&starting_position=TRIM_HORIZON.",
    )] = None,
    sink: Annotated[list[str] | None, typer.Option(
        "--sink", metavar="TOPIC=KIND:TARGET[?SETTING=VALUE&...]",
        help="Deliver the topic into s3:BUCKET, firehose:STREAM, eventbridge:BUS or "
             "sqs:QUEUE_URL of this platform (repeatable), e.g. orders=s3:lake?prefix=raw/.",
    )] = None,
    kafka_port: Annotated[int | None, typer.Option(
        "--kafka-port", min=0, max=65535,
        help="Also serve the Kafka protocol on this port (0 picks a free one) and print "
             "KAFKA_BOOTSTRAP_SERVERS; needs the kafka extra.",
    )] = None,
) -> None:
    """Run a local Streamlet platform (moto + the HTTP API) until Ctrl-C.

    Prints `export ...` lines on stdout: paste them into another shell to point the
    SDK, the CLI and AWS tools at it. Its state lives in memory and ends with it.
    """
    principals = _principals(principal or [])
    triggers = parse_triggers(trigger or [], sink)
    _check_port(host, port)
    if api_port:
        _check_port(host, api_port)
    platform = _start(port, host)
    runner = None
    kafka = None
    try:
        with _interruptible():
            env = platform.env()
            if kafka_port is not None:
                from .gateway import start_local_kafka

                kafka = start_local_kafka(platform, host, kafka_port, principals)
                env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
            for name, value in env.items():
                typer.echo(f"export {name}={shlex.quote(value)}")
            sys.stdout.flush()
            stderr().print(f"Streamlet local platform listening on "
                           f"{platform.aws_endpoint_url} (paste the exports above into "
                           "another shell; Ctrl-C to stop).", markup=False)
            _announce_api(platform, api_port, principals)
            if archive_interval:
                platform.start_archiver(archive_interval)
            runner = start_triggers(platform, triggers) if triggers else None
            platform.serve_forever()
    except KeyboardInterrupt:
        stderr().print("Stopped.")
    finally:
        if runner is not None:
            runner.stop()
        if kafka is not None:
            kafka.stop()
        platform.stop()


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM stop the server, even when started in the background.

    A shell starts background jobs with SIGINT ignored, and Python keeps that.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the port is taken (the server would print two and exit)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CliError(f"Cannot listen on {host}:{port}: {error.strerror or error}; "
                           "stop whatever uses it or pass --port (0 picks a free one).") from None


def _start(port: int, host: str) -> LocalPlatform:
    try:
        from ..local import LocalPlatform

        return LocalPlatform(port, host=host).start()
    except ImportError as error:
        raise CliError(f"The local platform needs moto ({error.name} is missing): "
                       "pip install 'streamlet[local]'.") from None


def demo(
    partitions: Annotated[int, typer.Option(
        "--partitions", "-p", min=1, max=1000, help="Partitions of the demo topic.")] = 4,
    records: Annotated[int, typer.Option(
        "--records", "-n", min=1, help="How many events to produce.")] = 5000,
) -> None:
    """Produce keyed JSON events on an embedded local platform, read them back, verify.

    Checks that every event came back exactly once, at the offset its producer was told,
    in order per key; then archives the topic to S3 segments and replays it from there,
    checking it gets the very same records. Prints per-partition offsets and throughput.
    Exits 1 on any mismatch.
    """
    try:
        from ..local.demo import run_demo
    except ImportError as error:
        raise CliError(f"The demo needs moto ({error.name} is missing): "
                       "pip install 'streamlet[local]'.") from None
    result = run_demo(partitions=partitions, records=records, console=stderr())
    out = stdout()
    out.print(partition_table(result))
    out.print(totals_table(result))
    if not result.ok:
        raise CliError("Verification failed: " + "; ".join(result.problems))
    stderr().print(f"[green]OK[/green]: all {result.consumed} records came back exactly once, "
                   "in order per key, and again, identical, from the S3 archive.")


def partition_table(result: DemoResult) -> Table:
    table = Table("PARTITION", "RECORDS", "FIRST OFFSET", "LAST OFFSET", "HIGH WATERMARK",
                  title=f"Topic '{result.topic}'")
    for stats in result.partitions:
        table.add_row(*(str(v) if v is not None else "-" for v in (
            stats.partition, stats.records, stats.first_offset, stats.last_offset,
            stats.high_watermark)))
    for column in table.columns:
        column.justify = "right"
    return table


def totals_table(result: DemoResult) -> Table:
    table = Table("TOTAL", "VALUE", show_header=False, title="Totals")
    table.columns[1].justify = "right"
    table.add_row("produced", str(result.produced))
    table.add_row("consumed", str(result.consumed))
    table.add_row("produce throughput", f"{result.produce_rate:,.0f} records/s")
    table.add_row("consume throughput", f"{result.consume_rate:,.0f} records/s")
    table.add_row("archived to S3", f"{result.archived_segments} segments, "
                                    f"{result.archived_bytes:,} bytes")
    table.add_row("replayed from S3", str(result.replayed))
    table.add_row("elapsed", f"{result.elapsed_seconds:.2f} s")
    return table
