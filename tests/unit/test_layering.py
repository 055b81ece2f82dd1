"""Imports point one way: the client API never reaches into the engine or boto3."""

from __future__ import annotations

import ast
from pathlib import Path

import streamlet

SDK = Path(streamlet.__file__).parent
CLIENT_MODULES = ["producer.py", "consumer.py", "admin.py", "records.py", "errors.py",
                  "partitioner.py", "codec.py", "topicconfig.py", "_values.py"]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_client_modules_do_not_import_engine_or_boto3() -> None:
    for module in CLIENT_MODULES:
        bad = {n for n in imported(SDK / module)
               if n.startswith((".engine", "boto3", "botocore", "moto", ".local"))}
        assert not bad, f"{module} imports {bad}"


def test_engine_does_not_import_the_client_api() -> None:
    for path in (SDK / "engine").glob("*.py"):
        bad = {n for n in imported(path)
               if n.lstrip(".") in ("producer", "consumer", "admin", "transport", "local", "cli")}
        assert not bad, f"{path.name} imports {bad}"


def test_no_client_is_created_at_import() -> None:
    for path in [*SDK.glob("*.py"), *(SDK / "engine").glob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and n.func.attr == "client"]
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                assert not calls, f"{path.name} creates a boto3 client at import"
