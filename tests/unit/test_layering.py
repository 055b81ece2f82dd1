"""Imports point one way (pyproject.toml's import-linter contracts), with no cycles, and
no boto3 client is created at import."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

import streamlet

SDK = Path(streamlet.__file__).parent
ROOT = SDK.parent.parent


def test_the_import_linter_contracts_hold() -> None:
    """The same check .ci/run makes: every contract in pyproject.toml is kept."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is not installed (requirements-dev.txt)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk")])}
    done = subprocess.run([lint], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.find_modules_directly_imported_by(node) & modules:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_the_sdk_has_no_import_cycles() -> None:
    """Between modules (a package's ``__init__`` re-exporting its children excepted)."""
    graph = grimp.build_graph("streamlet")
    packages = {m for m in graph.modules
                if (SDK.parent / m.replace(".", "/") / "__init__.py").exists()}
    assert _cycles(graph, set(graph.modules) - packages) == []


def test_no_client_is_created_at_import() -> None:
    for path in SDK.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and n.func.attr == "client"]
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                assert not calls, f"{path} creates a boto3 client at import"


def test_the_wheel_lists_every_package() -> None:
    """sdk/pyproject.toml lists packages by hand (one is mapped from functions/)."""
    config = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.relative_to(SDK.parent).parts[:-1]) for p in SDK.rglob("__init__.py")
               if "__pycache__" not in p.parts}
    mapped = set(config["package-dir"])
    assert set(config["packages"]) == on_disk | mapped
    assert config["package-dir"]["streamlet._functions"] == "../functions"
