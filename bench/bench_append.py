"""The append path before and after the single-write rewrite, measured in one run.

Run from the repository root, with the old code checked out beside it::

    git worktree add /tmp/streamlet-old b5b7b90     # once; never commit there
    python -m bench.bench_append                    # ~3 minutes on 2 cores
    python -m bench.bench_append --old /path/to/other/worktree --rounds 5

"After" is the package this interpreter imports, measured in this process; "before" is
the package under ``--old``/sdk, measured by a worker subprocess
(``python -m bench.append_side`` with that sdk first on PYTHONPATH) that runs the same
measurement code. Each side has its own ``LocalPlatform`` for the whole session.

Order: the write-cost rows of both sides at once (request counts do not depend on
timing; the trickle rows mostly sleep), the naive writer's cost, then the throughput
rounds alternating after/before (ABBA), then latency after, then before.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from . import append_report as ar
from . import report
from .append_cost import APPENDS, NAIVE_RECORDS, TRICKLE_APPENDS, TRICKLE_GAP_S
from .append_side import LATENCY_LINGER_MS, LATENCY_RATE, LATENCY_SECONDS, PREFIX, Side
from .bench_core import cpu_model, load_average, versions
from .codec_speed import implementation

REPO = Path(__file__).resolve().parent.parent
OLD_DEFAULT = Path("/tmp/streamlet-old")
ROUNDS = 3


class LocalSide:
    """The current package, in this process (a section runs when it is sent)."""

    def __init__(self) -> None:
        self.side = Side()
        self._reply: dict[str, Any] = {}

    def send(self, section: str) -> None:
        self._reply = self.side.run(section)

    def receive(self) -> dict[str, Any]:
        return self._reply

    def close(self) -> None:
        self.side.close()


class ProcessSide:
    """The package under ``old``/sdk, in a worker subprocess answering JSON lines."""

    def __init__(self, old: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old / "sdk"), str(REPO)])}
        self._log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.append_side"], cwd=REPO,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True)

    def send(self, section: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"section": section}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                reply: dict[str, Any] = json.loads(line[len(PREFIX):])
                if "error" in reply:
                    raise RuntimeError(f"the old side failed:\n{reply['error']}")
                return reply
        self._log.seek(0)
        raise RuntimeError(f"the old side exited:\n{self._log.read()[-4000:]}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=120)
        self._log.close()


Sides = dict[str, LocalSide | ProcessSide]


def call(side: LocalSide | ProcessSide, section: str) -> dict[str, Any]:
    side.send(section)
    return side.receive()


def cost_both(sides: Sides) -> dict[str, dict[str, Any]]:
    """Both sides' write-cost rows at once: the old worker runs while this process does."""
    sides["before"].send("cost")
    sides["after"].send("cost")
    return {version: sides[version].receive() for version in ar.VERSIONS}


def throughput_rounds(sides: Sides, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` rounds per side, alternating which goes first (after, before, before,
    after, ...), so that a change in the machine's load hits both alike."""
    runs: dict[str, list[dict[str, Any]]] = {version: [] for version in ar.VERSIONS}
    for r in range(rounds):
        order = ("after", "before") if r % 2 == 0 else ("before", "after")
        for version in order:
            reply = call(sides[version], "throughput")
            runs[version].append({**reply["result"], "load": reply["load_start"].split()[0]})
    return runs


def latency_both(sides: Sides) -> dict[str, dict[str, Any]]:
    found = {}
    for version in ("after", "before"):
        reply = call(sides[version], "latency")
        found[version] = {**reply["result"], "load": reply["load_start"].split()[0]}
    return found


def print_header(out: Console, argv: list[str]) -> None:
    """The machine, as bench_core prints it, and the load the numbers were taken under."""
    out.print("# Append path: before and after\n")
    out.print(f"Command: python -m bench.bench_append{' ' + ' '.join(argv) if argv else ''}")
    out.print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    out.print(f"Python: {platform.python_implementation()} {platform.python_version()} "
              f"on {platform.platform()}")
    out.print(f"Packages: {versions()}; record module: {implementation()}")
    out.print(f"Load average at start (1/5/15 min): {load_average()}")


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def describe_code(out: Console, old: Path, hello: dict[str, dict[str, Any]]) -> None:
    dirty = [line.split()[-1] for line in git("status", "--porcelain", "--", "sdk").splitlines()]
    out.print(f"After: {git('log', '-1', '--format=%h %s')} "
              f"({len(dirty)} uncommitted file(s) under sdk/"
              f"{': ' + ', '.join(dirty) if dirty else ''}); "
              f"in this process, {hello['after']['package']}")
    out.print(f"Before: {git('log', '-1', '--format=%h %s', cwd=old)}; in a worker "
              f"subprocess, {hello['before']['package']}")
    for version in ar.VERSIONS:
        out.print(f"  {version}: engine/log.py: \"{hello[version]['engine_doc']}\"")
    out.print(f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; two LocalPlatforms (one per "
              "side), each moto in server mode on 127.0.0.1, serialized\n")


def print_cost(out: Console, cost: dict[str, dict[str, Any]], naive: dict[str, Any]) -> None:
    out.print(f"## 1. Write cost per append: one writer, {APPENDS} appends per row after a "
              f"warm-up append; trickle: {TRICKLE_APPENDS} appends {TRICKLE_GAP_S:g} s apart\n")
    before, after = ar.costs(cost["before"]["result"]), ar.costs(cost["after"]["result"])
    report.show(out, ar.cost_table(before, after, ar.costs(naive["result"])))
    out.print(f"\nIdempotent batches built as the Producer builds them (256 KiB batch size), "
              f"default inline limit 8,192 B. $ = WRU $0.625/M + RRU $0.125/M + S3 PUT "
              f"$0.005/1,000. Naive: {NAIVE_RECORDS} PutItems per value size. Kinesis in: "
              f"on-demand data in only, $0.08/GB with each value rounded up to 1 KiB; not "
              f"the $0.04 stream-hour (per stream: $0.0111/M at a steady 1,000 rec/s).\n")


def print_requests(out: Console, cost: dict[str, dict[str, Any]]) -> None:
    out.print("## 4. DynamoDB (and S3) requests per append on the write path (from 1)\n")
    report.show(out, ar.requests_table(ar.costs(cost["before"]["result"]),
                                       ar.costs(cost["after"]["result"])))
    out.print("")


def print_timing(out: Console, runs: dict[str, list[dict[str, Any]]],
                 latency: dict[str, dict[str, Any]]) -> None:
    first = runs["after"][0]
    out.print(f"## 2. Producer throughput, ~100 B JSON values, direct mode: Producer "
              f"defaults ({first['records']:,} records, 4 partitions) vs naive PutItem "
              f"({first['naive_records']:,} records), {len(runs['after'])} rounds\n")
    report.show(out, ar.throughput_table(runs))
    out.print("\n" + ar.after_over_before(runs))
    out.print(f"\n## 3. send() -> poll() latency, {LATENCY_RATE} records/s for "
              f"{LATENCY_SECONDS} s, 1 partition, linger_ms={LATENCY_LINGER_MS}\n")
    report.show(out, ar.latency_table(latency))
    out.print("")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.bench_append")
    parser.add_argument("--old", type=Path, default=OLD_DEFAULT,
                        help="worktree of the old code (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    out = report.console()
    print_header(out, argv)
    started = time.perf_counter()
    sides: Sides = {"before": ProcessSide(args.old), "after": LocalSide()}
    try:
        hello = {version: call(side, "hello")["result"] for version, side in sides.items()}
        describe_code(out, args.old, hello)
        cost, naive = cost_both(sides), call(sides["after"], "naive")
        runs = throughput_rounds(sides, args.rounds)
        latency = latency_both(sides)
    finally:
        for side in sides.values():
            side.close()
    print_cost(out, cost, naive)
    print_timing(out, runs, latency)
    print_requests(out, cost)
    out.print("Targets (after):")
    out.print("\n".join(ar.verdicts(ar.costs(cost["after"]["result"]), runs["after"])))
    out.print(f"\nTotal time: {time.perf_counter() - started:,.1f} s; load average at end: "
              f"{load_average()}")


if __name__ == "__main__":
    main()
