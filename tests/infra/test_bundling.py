"""The Lambda asset is built locally (pip, no Docker) and failures are loud, not Docker."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra import bundling
from infra.bundling import BundlingError, LocalPipBundler, lambda_code, pip_command
from infra.functions import FUNCTIONS, StreamletFunctions
from infra.storage import StreamletStorage

REAL_PIP = os.environ.get("STREAMLET_TEST_REAL_BUNDLING") == "1"
# Importable top-level modules that bundling.REQUIREMENTS installs (with their deps).
BUNDLED_MODULES = {"aws_lambda_powertools", "aws_xray_sdk", "pydantic", "pydantic_core",
                   "aiokafka", "cramjam", "boto3", "botocore", "s3transfer", "urllib3",
                   "jmespath", "dateutil", "typing_extensions", "lz4", "backports", "re2"}


class FakePip:
    """Stands in for ``subprocess.run``: records the command, writes a marker wheel."""

    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.returncode, self.stderr = returncode, stderr
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if self.returncode == 0:
            target = Path(command[command.index("--target") + 1])
            (target / "fake_wheel").mkdir()
            (target / "fake_wheel" / "__init__.py").write_text("")
        return subprocess.CompletedProcess(command, self.returncode, "", self.stderr)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_pip_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = pip_command(tmp_path)
    assert bundling.RUNTIME.name == f"python{bundling.PYTHON_VERSION}"
    assert bundling.ARCHITECTURE.name == "arm64"
    for flag in (["--platform", "manylinux2014_aarch64"], ["--only-binary=:all:"],
                 ["--implementation", "cp"], ["--python-version", "3.13"],
                 ["--target", str(tmp_path)], ["--no-compile"]):
        assert " ".join(flag) in " ".join(command)
    assert command[-len(bundling.REQUIREMENTS):] == list(bundling.REQUIREMENTS)
    assert all("==" in requirement for requirement in bundling.REQUIREMENTS)


def test_bundler_copies_both_packages_and_installs_wheels(tmp_path: Path) -> None:
    pip = FakePip()
    assert LocalPipBundler(runner=pip).try_bundle(str(tmp_path)) is True
    files = _files(tmp_path)
    assert {"functions/__init__.py", "streamlet/__init__.py", "streamlet/engine/schema.py",
            "fake_wheel/__init__.py"} <= files
    assert not any(f.startswith(("streamlet/cli/", "streamlet/kafka/")) for f in files)
    assert not {"streamlet/testing.py", "streamlet/serializers.py"} & files
    assert {f for f in files if f.startswith("streamlet/local/")} == {
        "streamlet/local/__init__.py", "streamlet/local/credentials.py"}
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert pip.commands == [pip_command(tmp_path)]


def test_failed_pip_raises_instead_of_falling_back_to_docker(tmp_path: Path) -> None:
    pip = FakePip(returncode=1, stderr="ERROR: No matching distribution found for x==0")
    with pytest.raises(BundlingError, match="pip exited with 1") as raised:
        LocalPipBundler(runner=pip).try_bundle(str(tmp_path))
    assert "No matching distribution" in str(raised.value)
    assert "without Docker" in str(raised.value)


def test_missing_pip_raises(tmp_path: Path) -> None:
    def no_pip(*_: Any, **__: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("python")
    with pytest.raises(BundlingError, match="could not run pip"):
        LocalPipBundler(runner=no_pip).try_bundle(str(tmp_path))


def _functions_stack(tmp_path: Path, pip: FakePip) -> cdk.App:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bundled")
    storage = StreamletStorage(stack, "Storage", prefix="bundled")
    StreamletFunctions(stack, "Functions", storage=storage,
                       code=lambda_code(LocalPipBundler(runner=pip)))
    return app


def test_cdk_uses_the_local_bundle_as_one_asset(tmp_path: Path) -> None:
    pip = FakePip()
    _functions_stack(tmp_path, pip).synth()
    assets = json.loads((tmp_path / "Bundled.assets.json").read_text())["files"]
    zipped = [a["source"]["path"] for a in assets.values() if a["source"]["packaging"] == "zip"]
    assert len(zipped) == 1 and len(pip.commands) == 1
    assert {"functions/__init__.py", "fake_wheel/__init__.py"} <= _files(tmp_path / zipped[0])


def test_cdk_reports_a_failed_bundle_and_never_tries_docker(tmp_path: Path) -> None:
    pip = FakePip(returncode=1, stderr="ERROR: network unreachable")
    with pytest.raises(RuntimeError, match="Building the Streamlet Lambda asset failed") as e:
        _functions_stack(tmp_path, pip).synth()
    assert "network unreachable" in str(e.value)
    assert "docker run" not in str(e.value).lower()
    assert len(pip.commands) == 1


def test_handlers_named_in_the_contract_exist() -> None:
    for spec in FUNCTIONS:
        module, _, name = spec.handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), spec.handler


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks (imports for type checkers only)."""
    return {inner for node in ast.walk(tree) if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            for inner in ast.walk(node)}


def _imports(paths: list[Path]) -> Iterator[tuple[Path, str]]:
    for path in paths:
        tree = ast.parse(path.read_text())
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module


def _bundled(path: Path) -> bool:
    return bundling.sdk_file_bundled(path.relative_to(bundling.SDK_PACKAGE_DIR))


def _asset_sources() -> list[Path]:
    sdk = [p for p in bundling.SDK_PACKAGE_DIR.rglob("*.py") if _bundled(p)]
    return [*bundling.FUNCTIONS_DIR.rglob("*.py"), *sdk]


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = bundling.SDK_PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


# Lazy imports that only a local-only feature reaches: memory:// endpoints need the
# embedded platform (streamlet[local]), never used by a handler.
LOCAL_ONLY_IMPORTS = {("transport/endpoint.py", "streamlet.local.memory")}


def test_the_asset_imports_nothing_it_leaves_out() -> None:
    """Absolute and relative imports of the handlers and the bundled SDK stay inside."""
    for path in _asset_sources():
        for module in _absolute_imports(path):
            found = _module_file(module) if module.startswith("streamlet.") else None
            if path.is_relative_to(bundling.SDK_PACKAGE_DIR) and (
                    path.relative_to(bundling.SDK_PACKAGE_DIR).as_posix(),
                    module) in LOCAL_ONLY_IMPORTS:
                continue
            assert found is None or _bundled(found), (
                f"{path} imports {module}, which the Lambda asset leaves out")


def _absolute_imports(path: Path) -> Iterator[str]:
    """Every streamlet module ``path`` imports outside TYPE_CHECKING, made absolute."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    package = _package_of(path)
    for node in ast.walk(tree):
        if node in skipped or not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        yield from ([f"{base}.{a.name}" for a in node.names] + [base])


def _package_of(path: Path) -> str:
    if path.is_relative_to(bundling.FUNCTIONS_DIR):
        return "functions"
    parts = path.relative_to(bundling.SDK_PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1])


def test_every_third_party_import_is_bundled() -> None:
    """A new dependency of the handlers or the engine must join bundling.REQUIREMENTS."""
    top_level = {module.split(".")[0] for _, module in _imports(_asset_sources())}
    # compression: the standard library's from Python 3.14 (validation.py's zstd)
    third_party = top_level - set(sys.stdlib_module_names) - {"functions", "streamlet",
                                                                 "compression"}
    assert third_party <= BUNDLED_MODULES, third_party - BUNDLED_MODULES


@pytest.mark.skipif(not REAL_PIP, reason="set STREAMLET_TEST_REAL_BUNDLING=1 (uses PyPI)")
def test_real_bundle_has_arm64_wheels(tmp_path: Path) -> None:
    LocalPipBundler().try_bundle(str(tmp_path))
    compiled = [p.name for p in (tmp_path / "pydantic_core").glob("*.so")]
    assert compiled and all("aarch64" in name for name in compiled)
    assert (tmp_path / "aiokafka").is_dir() and (tmp_path / "aws_lambda_powertools").is_dir()
