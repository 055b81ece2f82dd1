"""Static checks on the synthesized template: cdk-nag, cfn-lint, and the acknowledgements.

checkov does not install into this virtual environment (it pins older boto3/packaging),
so it runs by hand; its skips live in the template's metadata and are checked here for a
reason and a line in docs/security.md (see that file for the command and the result).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match
from cfnlint.api import ManualArgs, lint_file

from .conftest import STACK, Synthesized

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
PACKS = ("AwsSolutions", "Serverless")
MIN_WORDS = 10
# CDK's Function depends on its role explicitly as well as through Fn::GetAtt.
ACCEPTED_CFN_LINT_WARNINGS = {"W3005"}


def _metadata(synthesized: Synthesized, key: str, field: str) -> Iterator[dict[str, Any]]:
    for resource in synthesized.json["Resources"].values():
        yield from resource.get("Metadata", {}).get(key, {}).get(field, [])


def _report(synthesized: Synthesized, pack: str) -> list[dict[str, str]]:
    (report,) = synthesized.outdir.glob(f"{pack}-*{STACK}-NagReport.csv")
    rows = csv.DictReader(report.open())
    unique = {tuple(row.values()): row for row in rows}  # aspects may visit twice
    return list(unique.values())


@pytest.mark.parametrize("pack", PACKS)
def test_cdk_nag_pack_ran_and_found_nothing_unacknowledged(synthesized: Synthesized,
                                                           pack: str) -> None:
    rows = _report(synthesized, pack)
    verdicts = {row["Compliance"] for row in rows}
    assert "Compliant" in verdicts
    assert verdicts <= {"Compliant", "Suppressed"}
    annotations = Annotations.from_stack(synthesized.stack)
    finding = Match.string_like_regexp(f"{pack}-.*")
    assert annotations.find_error("*", finding) == []
    assert annotations.find_warning("*", finding) == []


def test_every_nag_suppression_has_a_specific_reason(synthesized: Synthesized) -> None:
    rules = list(_metadata(synthesized, "cdk_nag", "rules_to_suppress"))
    assert rules
    for rule in rules:
        assert len(rule["reason"].split()) >= MIN_WORDS, rule
    suppressed = {row["Rule ID"] for pack in PACKS for row in _report(synthesized, pack)
                  if row["Compliance"] == "Suppressed"}
    assert suppressed == {rule["id"] for rule in rules}  # no stale suppressions


def test_every_checkov_skip_has_a_reason_and_is_documented(synthesized: Synthesized) -> None:
    skips = list(_metadata(synthesized, "checkov", "skip"))
    assert skips
    documented = SECURITY_DOC.read_text()
    for skip in skips:
        assert len(skip["comment"].split()) >= MIN_WORDS, skip
        assert re.search(rf"\b{skip['id']}\b", documented), skip["id"]


def test_every_nag_suppression_is_documented(synthesized: Synthesized) -> None:
    documented = SECURITY_DOC.read_text()
    for rule in _metadata(synthesized, "cdk_nag", "rules_to_suppress"):
        assert rule["id"] in documented, rule["id"]


def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    matches = lint_file(synthesized.outdir / f"{STACK}.template.json",
                        config=ManualArgs(include_checks=["I3011"], regions=["us-east-1"]))
    found = {m.rule.id for m in matches}
    assert not {rule for rule in found if rule.startswith("E")}, matches
    assert "I3011" not in found  # stateful resources carry Deletion/UpdateReplace policies
    assert {rule for rule in found if rule.startswith("W")} <= ACCEPTED_CFN_LINT_WARNINGS
