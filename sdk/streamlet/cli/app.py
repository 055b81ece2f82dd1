"""The ``streamlet`` command: the command tree and the one place errors are reported."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import StreamletError
from ..transport import ENDPOINT_ENV
from . import admin, gateway, groups, io, local, topics, transactions

DEBUG_ENV = "STREAMLET_DEBUG"


def report(message: str) -> None:
    """Print ``error: message`` as a single line on stderr."""
    one_line = " ".join(message.split())
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {one_line}", err=True)


def _report_typer_error(error: typer.TyperException) -> int:
    """Report a bad command line or a CliError; a bare group has already shown its help."""
    if type(error).__name__ == "NoArgsIsHelpError":
        return int(error.exit_code)
    ctx = getattr(error, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    report(error.format_message() + hint)
    return 1


class StreamletGroup(TyperGroup):
    """Runs the command tree and turns every failure into ``error: ...`` and exit status 1."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except typer.TyperException as error:
            sys.exit(_report_typer_error(error))
        except typer.Abort:
            sys.exit(130)
        except StreamletError as error:
            report(error.message)
            sys.exit(1)
        except Exception as error:  # a bug or an unexpected environment problem
            if os.environ.get(DEBUG_ENV):
                raise
            report(f"{type(error).__name__}: {error} (set {DEBUG_ENV}=1 for the traceback)")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=StreamletGroup,
    name="streamlet",
    help="Streamlet: Kafka's model (topics, partitions, offsets) on DynamoDB and S3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"streamlet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", "-b", envvar=ENDPOINT_ENV, show_envvar=True,
        help="Where Streamlet lives: direct+http://HOST:PORT (local) or direct://PREFIX.",
    )] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.",
    )] = False,
) -> None:
    """Streamlet: Kafka's model (topics, partitions, offsets) on DynamoDB and S3."""


app.add_typer(topics.app, name="topics")
app.add_typer(groups.app, name="groups")
app.add_typer(transactions.app, name="transactions")
app.add_typer(admin.app, name="admin")
app.command("produce")(io.produce)
app.command("consume")(io.consume)
app.command("local")(local.local)
app.command("demo")(local.demo)
app.command("gateway")(gateway.gateway)


def main() -> None:
    """Entry point of the ``streamlet`` console script."""
    app(prog_name="streamlet")
