"""``streamlet produce`` and ``streamlet consume``: lines in, records out (kcat's flags)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from ..admin import Admin
from ..consumer import Consumer
from ..futures import RecordFuture
from ..producer import Producer
from ..records import Record, TimestampType, TopicPartition
from ..transport import connect
from .common import CliError, endpoint, key_values, stderr, unescape
from .offsets import OFFSET_HELP, EndTracker, parse_offset, partitions_of, start_offsets

Topic = Annotated[str, typer.Argument(help="Topic name.", show_default=False)]
KeyDelimiter = Annotated[str | None, typer.Option(
    "--key-delimiter", "-K", metavar="DELIM",
    help="Key/value delimiter: split each line at its first DELIM (produce) or print "
         "key DELIM value (consume). \\t is a tab.")]


class Format(StrEnum):
    text = "text"
    json = "json"


# ---- produce -------------------------------------------------------------------------------

def produce(
    ctx: typer.Context,
    topic: Topic,
    file: Annotated[Path | None, typer.Option(
        "--file", "-l", exists=True, dir_okay=False, readable=True,
        help="Read lines from this file (with a progress bar) instead of stdin.")] = None,
    key_delimiter: KeyDelimiter = None,
    header: Annotated[list[str] | None, typer.Option(
        "--header", "-H", metavar="NAME=VALUE", help="Header on every record, repeatable.",
    )] = None,
    partition: Annotated[int | None, typer.Option(
        "--partition", "-p", min=0,
        help="Send every record to this partition (default: by key; keyless: sticky).",
    )] = None,
    compression: Annotated[str | None, typer.Option(
        "--compression", "-z", help="none, gzip, snappy, lz4 or zstd (default: the topic's).",
    )] = None,
) -> None:
    """Produce one record per line of stdin (or --file); empty lines are skipped.

    With -K DELIM a line is split at its first DELIM into key and value (a line without
    DELIM gets no key). Waits until every record is acknowledged; exits 1 if any failed.
    """
    headers = [(k, v.encode()) for k, v in key_values(header or [], "--header")]
    delimiter = unescape(key_delimiter).encode() if key_delimiter else None
    with Producer(endpoint(ctx), compression_type=compression) as producer, \
            _input_lines(file) as lines:
        futures = [producer.send(topic, value, key=key, headers=headers, partition=partition)
                   for key, value in _split(lines, delimiter)]
        producer.flush()
    _summarize(topic, futures)


@contextmanager
def _input_lines(file: Path | None) -> Iterator[Iterator[bytes]]:
    """Non-empty lines without their line ending, from stdin or from a file."""
    if file is None:
        yield _non_empty(sys.stdin.buffer)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())
    with file.open("rb") as handle, Progress(*columns, console=stderr()) as progress:
        task = progress.add_task(f"Producing {escape(file.name)}", total=file.stat().st_size)
        yield _non_empty(_advancing(handle, progress, task))


def _advancing(handle: IO[bytes], progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in handle:
        progress.advance(task, len(line))
        yield line


def _non_empty(raw: Iterable[bytes]) -> Iterator[bytes]:
    for raw_line in raw:
        line = raw_line.removesuffix(b"\n").removesuffix(b"\r")
        if line:
            yield line


def _split(lines: Iterable[bytes], delimiter: bytes | None
           ) -> Iterator[tuple[bytes | None, bytes]]:
    for line in lines:
        if delimiter and delimiter in line:
            key, _, value = line.partition(delimiter)
            yield key, value
        else:
            yield None, line


def _summarize(topic: str, futures: list[RecordFuture]) -> None:
    failures = [error for error in (f.exception() for f in futures) if error is not None]
    partitions = sorted({f.result().partition for f in futures if f.exception() is None})
    touched = ", ".join(map(str, partitions)) or "none"
    stderr().print(f"Produced {len(futures) - len(failures)} record(s) to '{topic}' "
                   f"(partitions: {touched}).")
    if failures:
        first = getattr(failures[0], "message", None) or str(failures[0])
        raise CliError(f"{len(failures)} of {len(futures)} record(s) failed; first: {first}")


# ---- consume -------------------------------------------------------------------------------

def consume(
    ctx: typer.Context,
    topic: Topic,
    offset: Annotated[str, typer.Option("--offset", "-o", help=OFFSET_HELP)] = "end",
    partition: Annotated[int | None, typer.Option(
        "--partition", "-p", min=0, help="Read only this partition (default: all).")] = None,
    count: Annotated[int | None, typer.Option(
        "--count", "-c", min=1, help="Exit after this many records.")] = None,
    exit_at_end: Annotated[bool, typer.Option(
        "--exit", "-e", help="Exit once the end of every partition is reached.")] = False,
    output: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text,
    json_lines: Annotated[bool, typer.Option("-J", help="Same as --format json.")] = False,
    key_delimiter: KeyDelimiter = None,
) -> None:
    """Print records: text is the value per line; json is one kcat -J object per line.

    JSON fields: topic, partition, offset, tstype (create or logappend), ts (ms), headers
    (a flat list: name, value, name, value ...), key, payload. Keys, payloads and header
    values are UTF-8 text when they decode as UTF-8, otherwise base64; null stays null.
    Without -e or -c, follows the topic until Ctrl-C.
    """
    spec = parse_offset(offset)
    transport = connect(endpoint(ctx))
    admin = Admin(transport=transport)
    infos = partitions_of(admin, topic, partition)
    starts = start_offsets(admin, topic, infos, spec)
    consumer = Consumer(transport=transport, auto_offset_reset="earliest")
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    highs = {TopicPartition(topic, info.partition): info.high for info in infos}
    tracker = EndTracker(admin, highs) if exit_at_end else None
    writer = _Writer(Format.json if json_lines else output, key_delimiter)
    with suppress(KeyboardInterrupt):  # Ctrl-C ends a follow: not an error
        _pump(consumer, writer, tracker, count)
    stderr().print(f"Consumed {writer.count} record(s) from '{topic}'.")


def _pump(consumer: Consumer, writer: _Writer, tracker: EndTracker | None,
          count: int | None) -> None:
    while count is None or writer.count < count:
        if tracker is not None and tracker.reached(consumer):
            return
        records = consumer.poll(timeout=0.5)
        writer.write(records if count is None else records[:count - writer.count])


class _Writer:
    """Writes records to stdout as bytes (values are not necessarily text)."""

    def __init__(self, output: Format, key_delimiter: str | None) -> None:
        self._json = output is Format.json
        self._delimiter = unescape(key_delimiter).encode() if key_delimiter else None
        self._out = sys.stdout.buffer
        self.count = 0

    def write(self, records: list[Record]) -> None:
        if not records:
            return
        self._out.write(b"".join(self._line(r) + b"\n" for r in records))
        self._out.flush()
        self.count += len(records)

    def _line(self, record: Record) -> bytes:
        if self._json:
            return json.dumps(as_json(record), ensure_ascii=False).encode()
        if self._delimiter is None:
            return record.value or b""
        return (record.key or b"") + self._delimiter + (record.value or b"")


def as_json(record: Record) -> dict[str, object]:
    """kcat -J's envelope for one record."""
    tstype = "logappend" if record.timestamp_type is TimestampType.LOG_APPEND_TIME else "create"
    return {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "tstype": tstype, "ts": record.timestamp,
        "headers": [item for name, value in record.headers for item in (name, _text(value))],
        "key": _text(record.key), "payload": _text(record.value),
    }


def _text(data: bytes | None) -> str | None:
    """UTF-8 text when the bytes decode, else base64 (documented in consume's help)."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")
