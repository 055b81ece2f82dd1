"""Make moto's TransactWriteItems cost O(items touched) instead of O(table size).

moto backs up every table a transaction touches with ``copy.deepcopy`` before applying
it, so each append copies the whole log table: 2,000 appends to one partition slowed
from 17 ms to 158 ms each here. This replacement keeps moto's semantics (conditions
checked per action, per-item CancellationReasons, all-or-nothing) but saves and
restores only the items the transaction names. Installed by the local platform and by
``serialized_moto``; it runs under their lock, as moto's original does under theirs.
"""

from __future__ import annotations

import copy
from typing import Any

_INSTALLED = False


def install() -> None:
    """Patch moto's DynamoDB backend once per process (idempotent)."""
    global _INSTALLED  # noqa: PLW0603 - a process-wide patch of a third-party module
    if _INSTALLED:
        return
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    class _NoTableCopies:
        """``copy`` for moto's backend module: tables are not deep-copied as backups."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _save(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore(self, saved)  # moto's own rollback restored the same table objects
            raise

    models.copy = _NoTableCopies()  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _INSTALLED = True


def _key_of(table: Any, op: dict[str, Any]) -> dict[str, Any]:
    if "Key" in op:
        return dict(op["Key"])
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: op["Item"][name] for name in names if name in op.get("Item", {})}


def _save(backend: Any, items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
    saved = []
    for entry in items:
        _, op = next(iter(entry.items()))
        name = op.get("TableName")
        table = backend.tables.get(name)
        if table is None:
            continue
        key = _key_of(table, op)
        try:
            current = backend.get_item(name, key)
        except Exception:
            continue
        attrs = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        saved.append((name, key, attrs))
    return saved


def _restore(backend: Any, saved: list[tuple[str, dict[str, Any], Any]]) -> None:
    for name, key, attrs in reversed(saved):
        if attrs is None:
            if backend.get_item(name, key) is not None:
                backend.delete_item(name, key)
        else:
            backend.put_item(name, attrs)
