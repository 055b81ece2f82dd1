"""Static checks on the synthesized template: cdk-nag, cfn-lint, and the acknowledgements.

checkov does not install into this virtual environment (it pins older boto3/packaging), so
the ``checkov`` fixture installs requirements-checkov.txt into a virtual environment of its
own, cached in pytest's cache directory. Its skips live in the template's metadata and are
checked here for a reason and a line in docs/security.md.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match
from cfnlint.api import ManualArgs, lint_file

from .conftest import STACK, Synthesized

ROOT = Path(__file__).resolve().parents[2]
SECURITY_DOC = ROOT / "docs" / "security.md"
CHECKOV_REQUIREMENTS = ROOT / "requirements-checkov.txt"
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


@pytest.fixture(scope="session")
def checkov(request: pytest.FixtureRequest) -> Path:
    """The checkov executable, in a virtual environment of its own (kept between runs)."""
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = request.config.cache.mkdir(f"checkov-{digest}")
    executable, done = venv / "bin" / "checkov", venv / "installed"
    # two test workers may both need it: one installs, the other waits on the lock
    with open(venv.parent / f"checkov-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():  # a fresh machine, or an earlier install that did not finish
            shutil.rmtree(venv)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                                  "-r", str(CHECKOV_REQUIREMENTS)],
                                 check=False, capture_output=True, text=True, timeout=240)
            assert pip.returncode == 0, f"installing checkov failed:\n{pip.stderr[-3000:]}"
            done.touch()
    return executable


def checkov_clean(checkov: Path, template: Path) -> dict[str, Any]:
    """checkov's JSON report on ``template``, asserted to hold no failed check and no
    parsing error."""
    run = subprocess.run([str(checkov), "--file", str(template), "--framework", "cloudformation",
                          "--skip-download", "--output", "json"],
                         check=False, capture_output=True, text=True, timeout=240)
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1 means failed checks, asserted next
    report: dict[str, Any] = json.loads(run.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    return report


def test_checkov_finds_no_failures_and_skips_only_what_the_template_acknowledges(
        synthesized: Synthesized, checkov: Path) -> None:
    report = checkov_clean(checkov, synthesized.outdir / f"{STACK}.template.json")
    assert report["summary"]["passed"] >= 80  # the scan saw the whole stack
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped == {skip["id"] for skip in _metadata(synthesized, "checkov", "skip")}
