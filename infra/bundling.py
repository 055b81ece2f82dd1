"""Lambda code built without Docker: one asset holding ``functions``, ``streamlet`` and wheels.

CDK calls :meth:`LocalPipBundler.try_bundle` with an empty output directory. It copies the
two packages in and installs the pinned third-party wheels for the Lambda platform with
``pip install --platform ... --only-binary=:all: --target``. On failure it raises: returning
False would make CDK fall back to Docker, which is not there on most CI machines.

Example:
    >>> code = lambda_code()   # one per stack; every function shares the one asset
    ... # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
SDK_PACKAGE_DIR = REPO_ROOT / "sdk" / "streamlet"

RUNTIME = lambda_.Runtime.PYTHON_3_13
PYTHON_VERSION = "3.13"
ARCHITECTURE = lambda_.Architecture.ARM_64
# Lambda's Python 3.13 runs on Amazon Linux 2023 (glibc 2.34): both tags load there.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# What the handlers import besides the standard library, pinned to what the tests run.
# boto3 is bundled although the runtime has one: the engine needs S3 conditional writes
# (IfNoneMatch), which older runtime-provided botocore releases do not model.
REQUIREMENTS = (
    "aws-lambda-powertools[tracer]==3.37.0",
    "pydantic==2.14.4",
    "aiokafka[lz4,zstd]==0.14.0",
    "lz4==4.4.5",
    "backports.zstd==1.8.0",
    "boto3==1.44.8",
    # REST v2 topic_pattern subscriptions (RE2: linear time); wheels exist for
    # cp313 manylinux_2_28_aarch64
    "google-re2==1.1.20251105",
)
# The SDK's local emulator and CLI need moto/typer, which Lambda neither has nor needs;
# of local/ only the credentials constants (the transports' loopback fallback) and the
# package's lazy __init__ go in. The Kafka gateway runs in its own container image
# (infra/kafka.Dockerfile); the serializers (orjson, fastavro) and the pytest plugin are
# for users' programs and tests. No handler imports any of them (tests/infra/test_bundling).
SDK_SUBPACKAGES_LEFT_OUT = frozenset({"local", "cli", "kafka"})
SDK_FILES_KEPT = frozenset({"local/__init__.py", "local/credentials.py"})
SDK_FILES_LEFT_OUT = frozenset({"serializers.py", "testing.py"})
PIP_TIMEOUT_S = 600

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class BundlingError(RuntimeError):
    """The Lambda asset could not be built locally (CDK will not try Docker)."""


def sdk_file_bundled(relative: Path) -> bool:
    """Whether the SDK file at ``relative`` (to the package directory) joins the asset."""
    if len(relative.parts) == 1:
        return relative.as_posix() not in SDK_FILES_LEFT_OUT
    return (relative.parts[0] not in SDK_SUBPACKAGES_LEFT_OUT
            or relative.as_posix() in SDK_FILES_KEPT)


def _ignore(root: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in {"__pycache__", ".mypy_cache"} or n.endswith(".pyc")}
        if root == SDK_PACKAGE_DIR:
            relative = Path(directory).relative_to(root)
            skipped |= {n for n in names if (Path(directory) / n).is_file()
                        and not sdk_file_bundled(relative / n)}
        return skipped
    return ignore


def pip_command(target: Path, requirements: Sequence[str] = REQUIREMENTS) -> list[str]:
    """The pip invocation that installs Lambda-platform wheels into ``target``."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", PYTHON_VERSION, *platforms, "--target", str(target),
            *requirements]


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundler:
    """Builds the Lambda asset on this machine (see the module docstring).

    Args:
        runner: ``subprocess.run`` or a stand-in (tests).
        requirements: pip requirement specifiers to install.
    """

    def __init__(self, runner: Runner | None = None,
                 requirements: Sequence[str] = REQUIREMENTS) -> None:
        self._run = runner or subprocess.run
        self._requirements = tuple(requirements)
        self.seconds: float | None = None

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        started = time.monotonic()
        out = Path(output_dir)
        copy_sources(out)
        self._install(out)
        self.seconds = time.monotonic() - started
        print(f"streamlet: Lambda asset bundled locally in {self.seconds:.1f}s", file=sys.stderr)
        return True

    def _install(self, out: Path) -> None:
        command = pip_command(out, self._requirements)
        try:
            done = self._run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                             check=False)
        except (OSError, subprocess.SubprocessError) as e:
            raise BundlingError(_explain(f"could not run pip ({e})")) from e
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
            raise BundlingError(_explain(f"pip exited with {done.returncode}:\n{tail}"))


def copy_sources(out: Path) -> None:
    """Copy the ``functions`` and ``streamlet`` packages into the asset directory."""
    for source, name in ((FUNCTIONS_DIR, "functions"), (SDK_PACKAGE_DIR, "streamlet")):
        if not (source / "__init__.py").is_file():
            raise BundlingError(_explain(f"package {source} is missing"))
        shutil.copytree(source, out / name, ignore=_ignore(source))


def _explain(problem: str) -> str:
    return (f"Building the Streamlet Lambda asset failed: {problem}\n"
            f"The asset is built without Docker: pip must reach PyPI (or the index set in "
            f"PIP_INDEX_URL) and find {', '.join(PLATFORMS)} wheels for CPython "
            f"{PYTHON_VERSION}. To check the template only, synthesize with `-c bundle=false` "
            f"(app.py) or the context aws:cdk:bundling-stacks=[] (not deployable).")


def lambda_code(bundler: cdk.ILocalBundling | None = None) -> lambda_.Code:
    """The asset every Streamlet function runs; build one per stack and share it."""
    local = bundler or cast(cdk.ILocalBundling, LocalPipBundler())
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            image=RUNTIME.bundling_image, local=local,
            output_type=cdk.BundlingOutput.NOT_ARCHIVED,
        ),
    )
