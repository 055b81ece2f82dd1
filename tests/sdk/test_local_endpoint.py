"""The local platform's endpoint reaches its own tables and bucket, whatever their names."""

from __future__ import annotations

import pytest

from streamlet.engine import Engine, Names
from streamlet.local import LocalPlatform
from streamlet.transport.endpoint import connect


@pytest.mark.parametrize(("names", "suffix"), [
    (Names(), ""),
    (Names(prefix="odd", bucket="odd-data"), "/odd"),
    (Names(prefix="odd", bucket="elsewhere"), "/odd?bucket=elsewhere"),
    (Names(bucket="elsewhere"), "?bucket=elsewhere"),
])
def test_the_endpoint_names_a_bucket_the_prefix_does_not_imply(
        names: Names, suffix: str) -> None:
    platform = LocalPlatform(names=names).start()
    try:
        assert platform.endpoint == f"direct+http://127.0.0.1:{platform.port}{suffix}"
        engine = connect(platform.endpoint)
        assert isinstance(engine, Engine) and engine.names == names
    finally:
        platform.stop()
