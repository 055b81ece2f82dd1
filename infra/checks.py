"""Reviewed exceptions to the static checks, written into the template next to the resource.

cdk-nag reads ``Metadata.cdk_nag.rules_to_suppress`` and checkov reads
``Metadata.checkov.skip``, so every acknowledgement travels with the synthesized template:
anyone who runs either tool on ``cdk.out`` sees the same findings and the same reasons.
Writing the metadata ourselves keeps cdk-nag a development tool, not a dependency of the app.

Example:
    >>> acknowledge(log_bucket, checkov={"CKV_AWS_18": "This bucket is the access-log "
    ...     "target of the data bucket; logging its own writes would loop."})
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON_WORDS = 10

LOGS_DEFAULT_ENCRYPTION = (
    "CloudWatch Logs encrypts every log group at rest by default; Streamlet logs no record "
    "payloads or credentials, so a customer managed key would add cost, not protection.")


def _resources(construct: IConstruct, children: bool) -> Iterable[CfnResource]:
    nodes = construct.node.find_all() if children else [construct]
    for node in nodes:
        child = node.node.default_child or node
        if isinstance(child, CfnResource):
            yield child


def _checked(reason: str) -> str:
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"An acknowledgement needs a specific reason of at least "
                         f"{MIN_REASON_WORDS} words: {reason!r}")
    return reason


def _merge(resource: CfnResource, key: str, field: str, entries: list[dict[str, object]]) -> None:
    current = dict(resource.get_metadata(key) or {})
    known = list(current.get(field, []))
    current[field] = known + [e for e in entries if e not in known]
    resource.add_metadata(key, current)


def acknowledge(construct: IConstruct, *, nag: Mapping[str, str] | None = None,
                nag_findings: Mapping[str, Iterable[str | Mapping[str, str]]] | None = None,
                checkov: Mapping[str, str] | None = None, children: bool = False) -> None:
    """Record reviewed exceptions on ``construct`` (and its children if ``children``).

    Args:
        nag: cdk-nag rule id -> reason (the whole rule is acknowledged).
        nag_findings: rule id -> the granular findings it covers, e.g.
            ``{"AwsSolutions-IAM5": ["Resource::*"]}`` (or ``{"regex": "/.../"}``
            entries); the reason comes from ``nag``.
        checkov: checkov check id -> reason.
    """
    nag, checkov, nag_findings = nag or {}, checkov or {}, nag_findings or {}
    rules: list[dict[str, object]] = []
    for rule, reason in nag.items():
        entry: dict[str, object] = {"id": rule, "reason": _checked(reason)}
        if rule in nag_findings:
            entry["applies_to"] = list(nag_findings[rule])
        rules.append(entry)
    skips: list[dict[str, object]] = [{"id": check, "comment": _checked(reason)}
                                      for check, reason in checkov.items()]
    for resource in _resources(construct, children):
        if rules:
            _merge(resource, "cdk_nag", "rules_to_suppress", rules)
        if skips:
            _merge(resource, "checkov", "skip", skips)
