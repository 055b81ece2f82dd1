"""The kafka-python program of docs/kafka-compatibility.md and its Streamlet port.

Both programs are read from the page, so the tests run what the page shows.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "kafka-compatibility.md"
RECORDS = 10  # what both programs send


def program(heading: str) -> str:
    """The python block under the ``### {heading}`` heading of the page."""
    text = PAGE.read_text()
    found = re.search(rf"^### {re.escape(heading)}\n.*?```python\n(.*?)```", text,
                      re.MULTILINE | re.DOTALL)
    assert found, f"{PAGE} has no python block under '### {heading}'"
    return found.group(1)


BEFORE = "Before: kafka-python"
AFTER = "After: Streamlet"


def edited_lines(before: str, after: str) -> int:
    """Lines changed, added or removed (whitespace inside a line ignored)."""
    a = [" ".join(line.split()) for line in before.splitlines()]
    b = [" ".join(line.split()) for line in after.splitlines()]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
               if tag != "equal")


def run(source: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    """Run a program as a script would run (its globals returned) with ``env`` set."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, str(PAGE), "exec"), namespace)
    return namespace


def check_outcome(namespace: dict[str, Any]) -> None:
    """Every order was delivered (its callback ran) and read back once."""
    assert sorted(namespace["orders"]) == list(range(RECORDS))
    assert len(namespace["offsets"]) == RECORDS
