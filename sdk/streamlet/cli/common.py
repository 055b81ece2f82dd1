"""Pieces every command shares: consoles, the endpoint, option parsing, the error type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


_UNLIMITED_WIDTH = 1_000_000  # never fold or truncate a cell: scripts split these lines
NUMERIC_COLUMNS = frozenset({"PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                             "NEW-OFFSET", "NUMBER", "PRODUCER-ID", "EPOCH"})


def print_table(columns: Sequence[str], rows: Iterable[list[str]]) -> None:
    """Aligned columns without borders (numbers right-aligned, as in `topics describe`).

    Rendered at unlimited width, so a long id is never folded or cut off, and without
    trailing blanks: every line splits on whitespace into the same fields.
    """
    table = Table(*columns, box=None, pad_edge=False)
    for column in table.columns:
        if column.header in NUMERIC_COLUMNS:
            column.justify = "right"
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console = Console(highlight=False, width=_UNLIMITED_WIDTH)
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())
