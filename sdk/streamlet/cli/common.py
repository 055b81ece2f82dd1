"""Pieces every command shares: consoles, the endpoint, option parsing, the error type."""

from __future__ import annotations

import typer
from rich.console import Console

from ..transport import ENDPOINT_ENV


class CliError(typer.TyperException):
    """A user-facing failure: printed as one ``error: ...`` line, exit status 1."""

    exit_code = 1


def stderr() -> Console:
    """Status, progress and summaries go to stderr, so stdout stays pipeable."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout() -> Console:
    """Rich output meant as the command's data (tables)."""
    return Console(highlight=False)


def endpoint(ctx: typer.Context) -> str:
    """The --endpoint option (or $STREAMLET_ENDPOINT), required by commands that connect."""
    value = ctx.find_root().params.get("endpoint")
    if not value:
        raise CliError(
            f"No Streamlet endpoint: pass --endpoint URL or set {ENDPOINT_ENV} "
            "(run `streamlet local` in another terminal and paste its export lines).")
    return str(value)


def key_values(pairs: list[str], what: str) -> list[tuple[str, str]]:
    """Parse repeated ``key=value`` options, keeping order and duplicates."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"Invalid {what} {pair!r}: expected key=value.")
        parsed.append((key, value))
    return parsed


def unescape(delimiter: str) -> str:
    r"""Let users type ``\t`` or ``\n`` for a delimiter, as kcat does."""
    return delimiter.replace("\\t", "\t").replace("\\n", "\n")
