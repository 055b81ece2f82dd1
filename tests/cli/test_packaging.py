"""The built wheel, installed into a fresh virtual environment outside the repository,
runs ``streamlet local`` with its HTTP API (the handlers ship inside the package)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from streamlet.local.credentials import LOCAL_CREDENTIALS, REGION

ROOT = Path(__file__).resolve().parents[2]
API_LINE = re.compile(r"HTTP API \(SigV4[^)]*\): (http://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel ./sdk``, as a release would build it."""
    out, tree = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("tree")
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for part in ("sdk", "functions"):  # built from a copy: the checkout stays clean
        shutil.copytree(ROOT / part, tree / part, ignore=skip)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(tree / "sdk")], check=True, timeout=300)
    (found,) = out.glob("streamlet-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with only the wheel installed; the pinned
    third-party packages come from this environment's site-packages on PYTHONPATH (no
    network), whose editable streamlet is inert there (its finder loads from a .pth)."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", str(wheel)], check=True, timeout=300)
    return home


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STREAMLET_"))}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    return env


@pytest.fixture
def local_api(installed: Path, tmp_path: Path) -> Iterator[str]:
    """``streamlet local`` from the installed wheel, run in an empty directory."""
    process = subprocess.Popen(
        [str(installed / "bin" / "streamlet"), "local", "--port", "0", "--api-port", "0",
         "--archive-interval", "0"], cwd=tmp_path, env=_environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield _wait_for_api(process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_api(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        found = API_LINE.search(line)
        if found:
            return found.group(1)
        if not line and process.poll() is not None:
            break
    raise AssertionError("no HTTP API line from streamlet local:\n" + "".join(seen))


def test_the_wheel_ships_the_handlers_and_serves_the_http_api(local_api: str) -> None:
    url = f"{local_api}/v3/clusters"
    request = AWSRequest(method="GET", url=url, headers={"Accept": "application/json"})
    SigV4Auth(Credentials(*LOCAL_CREDENTIALS), "execute-api", REGION).add_auth(request)
    reply = urllib3.request("GET", url, headers=dict(request.headers.items()), timeout=10)
    assert reply.status == 200, reply.data
    assert json.loads(reply.data)["data"][0]["cluster_id"] == "streamlet"


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path,
                                                             tmp_path: Path) -> None:
    code = ("import streamlet, streamlet._functions.api as api; "
            "print(streamlet.__file__); print(api.__file__)")
    done = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path,
                          env=_environment(), capture_output=True, text=True, check=True)
    for path in done.stdout.split():
        assert Path(path).is_relative_to(installed), path
