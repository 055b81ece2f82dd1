"""The pytest plugin users get with the package, run as a user would: pytester starts a
fresh pytest process on a user-style test file (the README's example)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import streamlet
import streamlet.testing

pytest_plugins = ["pytester"]

ROOT = Path(streamlet.__file__).resolve().parents[2]

# The README's example test, as users read it there
EXAMPLE = "\n" + re.search(r"^## Testing your application\n.*?```python\n(.*?)```",
                           (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)[1]

SECOND_TEST = """

def test_a_fresh_topic_is_empty_and_its_own(streamlet_admin, streamlet_topic):
    assert streamlet_admin.watermarks(streamlet_topic, 0) == (0, 0)
    assert streamlet_topic.startswith("test_a_fresh_topic_is_empty_and_its_own-")
"""

IN_PROCESS = """

def test_no_server_was_started(streamlet_endpoint):
    import threading
    assert streamlet_endpoint == "memory://pytest"
    assert [t.name for t in threading.enumerate() if t.name == "streamlet-local"] == []
"""


def _plugin_args() -> list[str]:
    """The installed entry point loads the plugin; a checkout installed before it existed
    loads it by name instead."""
    installed = any(ep.value == "streamlet.testing" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "streamlet.testing"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:randomly", *args,
                                         timeout=240)


def test_the_example_runs_in_process_by_default(pytester: pytest.Pytester) -> None:
    """The default backend is memory://: the engine over in-process moto, no server and no
    port. How fast its first test starts is measured by ``python -m bench.bench_testing``
    (docs/benchmarks.md), not asserted here."""
    pytester.makepyfile(test_orders=EXAMPLE + SECOND_TEST + IN_PROCESS)
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=3)


def test_the_example_runs_over_http_on_a_local_platform(pytester: pytest.Pytester) -> None:
    """--streamlet-backend=http: the local platform's gateway (SigV4 checked, the Lambda
    handlers in-process); the platform itself is a fixture too (direct, like =local)."""
    pytester.makepyfile(test_orders=EXAMPLE + """

def test_the_platform_is_there_too(streamlet_platform, streamlet_endpoint, streamlet_topic):
    from streamlet import Admin
    assert streamlet_endpoint.startswith("http://127.0.0.1:")
    with Admin(streamlet_platform.endpoint) as direct:
        assert streamlet_topic in direct.list_topics()
""")
    _run(pytester, "--streamlet-backend=http").assert_outcomes(passed=2)


def test_the_fixtures_meet_none_of_a_projects_own(pytester: pytest.Pytester) -> None:
    """This repository's conftest defines platform, engine, topic and endpoint; a user's
    may too. The plugin's names are all streamlet_*, and a session that uses none of them
    imports neither moto nor boto3."""
    pytester.makeconftest("""
import pytest

@pytest.fixture
def topic():
    return "mine"

@pytest.fixture
def endpoint():
    return "my-endpoint"

@pytest.fixture
def platform():
    return "my-platform"
""")
    pytester.makepyfile(test_mine="""
import sys

def test_untouched(topic, endpoint, platform, pytestconfig):
    assert (topic, endpoint, platform) == ("mine", "my-endpoint", "my-platform")
    assert pytestconfig.pluginmanager.has_plugin("streamlet") or \\
        pytestconfig.pluginmanager.has_plugin("streamlet.testing")
    assert "moto" not in sys.modules and "boto3" not in sys.modules

def test_side_by_side(topic, streamlet_topic, streamlet_endpoint):
    assert topic == "mine" and streamlet_topic != topic
    assert streamlet_endpoint == "memory://elsewhere"
""")
    _run(pytester, "-v", "--streamlet-endpoint=memory://elsewhere").assert_outcomes(passed=2)


def test_a_bad_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nstreamlet_backend = kafka\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*streamlet_backend = 'kafka': expected one of memory*"])


def test_the_package_declares_the_entry_point() -> None:
    config = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())
    assert config["project"]["entry-points"]["pytest11"] == {"streamlet": "streamlet.testing"}
    fixtures = {"streamlet_platform", "streamlet_endpoint", "streamlet_admin",
                "streamlet_topic_factory", "streamlet_topic"}
    assert fixtures <= set(vars(streamlet.testing))
