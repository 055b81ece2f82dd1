"""How fast a user's test starts with the pytest plugin (streamlet.testing), by backend.

Runs the README's example test file (two tests) in a fresh ``pytest`` process per run, as
a user's project would, and records each test's fixture setup time (CPU and wall) with a
small conftest: the first test pays for the platform (moto imported, clients built,
tables provisioned) and its topic; the second only for its topic.

    python -m bench.bench_testing               # 5 runs per backend
    python -m bench.bench_testing --runs 9
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from . import report
from .bench_core import load_average, print_machine

ROOT = Path(__file__).resolve().parent.parent
SECOND = '''

def test_a_fresh_topic_is_empty(streamlet_admin, streamlet_topic):
    assert streamlet_admin.watermarks(streamlet_topic, 0) == (0, 0)
'''
CONFTEST = '''
import json, time
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        with open("setup-times.jsonl", "a") as out:
            out.write(json.dumps({"wall": time.perf_counter() - wall,
                                  "cpu": time.process_time() - cpu}) + "\\n")
'''
BACKENDS = ("memory", "local", "http")


def example() -> str:
    """The README's example test, as users read it there."""
    found = re.search(r"^## Testing your application\n.*?```python\n(.*?)```",
                      (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    if found is None:
        raise SystemExit("README.md has no example under '## Testing your application'")
    return found[1]


def one_run(backend: str) -> tuple[dict[str, float], dict[str, float], float]:
    """(first test's setup, second test's setup, the whole pytest process's wall time)."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "conftest.py").write_text(CONFTEST)
        (work / "test_orders.py").write_text(example() + SECOND)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                               "-p", "no:cacheprovider", "-p", "no:xdist",
                               f"--streamlet-backend={backend}", "test_orders.py"],
                              cwd=work, capture_output=True, text=True, timeout=600,
                              check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"pytest failed on backend {backend}:\n{done.stdout[-3000:]}")
        first, second = (json.loads(line)
                         for line in (work / "setup-times.jsonl").read_text().splitlines())
        return first, second, elapsed


def main(argv: list[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(args_in)
    out = Console(width=160)
    print_machine(out, args_in, "How fast a user's test starts (streamlet.testing)",
                  "bench.bench_testing")
    rows = []
    for backend in BACKENDS:
        runs = [one_run(backend) for _ in range(args.runs)]
        median = statistics.median
        rows.append([backend, f"{median(r[0]['cpu'] for r in runs):.2f}",
                     f"{median(r[0]['wall'] for r in runs):.2f}",
                     f"{max(r[0]['cpu'] for r in runs):.2f}",
                     f"{median(r[1]['cpu'] for r in runs):.3f}",
                     f"{median(r[1]['wall'] for r in runs):.3f}",
                     f"{median(r[2] for r in runs):.1f}"])
    out.print(f"\n## Fixture setup of the README's example, {args.runs} fresh pytest processes "
              "per backend (medians)\n")
    out.print(report.table(["Backend", "1st test CPU s", "1st test wall s", "1st CPU max s",
                            "2nd test CPU s", "2nd test wall s", "pytest process wall s"],
                           rows))
    out.print(f"\nLoad average at end: {load_average()}")


if __name__ == "__main__":
    main()
