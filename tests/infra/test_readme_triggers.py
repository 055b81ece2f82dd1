"""The README's "Triggers and sinks" section, as users read it: its CDK block synthesizes
(in a fresh process, as ``python app.py`` would, with the handler block as the asset) into a
trigger of the Powertools handler and an S3 sink, and the handler block reads a Streamlet
event."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamlet.records import Record
from streamlet.triggers.event import kafka_event

ROOT = Path(__file__).resolve().parents[2]
SECTION = re.search(r"^## Triggers and sinks.*?(?=^## )", (ROOT / "README.md").read_text(),
                    re.MULTILINE | re.DOTALL)
assert SECTION is not None
HANDLER, CDK_APP = re.findall(r"```python\n(.*?)```", SECTION[0], re.DOTALL)[:2]


def test_the_cdk_block_is_a_dozen_lines() -> None:
    assert len(CDK_APP.strip().splitlines()) <= 12


def test_the_handler_block_reads_a_streamlet_event(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(HANDLER, "README:billing.py", "exec"), namespace)
    records = [Record("orders", 3, 7 + i, b"alice", json.dumps({"item": i}).encode(),
                      [("trace", b"abc")], 1_764_547_200_000) for i in range(2)]
    namespace["handler"](kafka_event(records, "streamlet://streamlet"), None)
    assert capsys.readouterr().out.splitlines() == [
        "orders 3 7 {'item': 0}", "orders 3 8 {'item': 1}"]


def _synth(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "billing.py").write_text(HANDLER)
    (tmp_path / "app.py").write_text(CDK_APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk")]),
           "CDK_OUTDIR": str(tmp_path / "cdk.out"),
           # no Lambda asset build (pip for arm64): the template is what is checked
           "CDK_CONTEXT_JSON": json.dumps({"aws:cdk:bundling-stacks": []}),
           "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    done = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    template = json.loads((tmp_path / "cdk.out" / "Streamlet.template.json").read_text())
    return dict(template["Resources"])


def _of(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v["Properties"] for k, v in resources.items() if v["Type"] == kind}


def test_the_cdk_block_synthesizes_the_trigger_and_the_sink(tmp_path: Path) -> None:
    resources = _synth(tmp_path)
    functions = _of(resources, "AWS::Lambda::Function")
    billing = next(k for k, f in functions.items() if f["Handler"] == "billing.handler")
    dispatcher = next(f for f in functions.values()
                      if f["Handler"] == "functions.api.dispatcher_handler")
    settings = json.loads(_joined(dispatcher["Environment"]["Variables"]["STREAMLET_TRIGGERS"]))
    trigger, sink = sorted(settings, key=lambda s: "sink" in s)
    assert (trigger["topic"], trigger["batch_size"], trigger["maximum_retry_attempts"],
            trigger["bisect_batch_on_function_error"]) == ("orders", 100, 3, True)
    assert (sink["topic"], sink["sink"]["kind"], sink["sink"]["prefix"]) == \
        ("orders", "s3", "raw/")
    # the dispatcher may invoke the handler, and put objects under the sink's prefix
    statements = [s for p in _of(resources, "AWS::IAM::Policy").values()
                  for s in p["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert invoke and all(json.dumps(s["Resource"]).count(billing) for s in invoke)
    puts = [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]
    assert any("/raw/orders/*" in json.dumps(s["Resource"]) for s in puts)
    # woken by the log table's stream, filtered to new batch items of `orders`
    (log,) = [m for m in _of(resources, "AWS::Lambda::EventSourceMapping").values()
              if "StreamletStorageLog" in json.dumps(m["EventSourceArn"])]
    (pattern,) = [json.loads(f["Pattern"]) for f in log["FilterCriteria"]["Filters"]]
    assert pattern["dynamodb"]["Keys"]["pk"] == {"S": [{"prefix": "orders/"}]}


def _joined(value: Any) -> str:
    """A string or a CloudFormation ``Fn::Join`` of strings and tokens (ARNs, the bucket's
    name: inside JSON strings), the tokens written as ``TOKEN``."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return str(separator).join(p if isinstance(p, str) else "TOKEN" for p in parts)
