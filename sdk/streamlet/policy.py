"""Evaluating IAM identity-based policies: the local gateway, the handlers' topic checks, tests.

Pure (no I/O): the Lambda asset ships it, because the handlers evaluate the caller's grant
against the route a body-named topic stands for (see ``functions/_access.py``).

Enough of IAM to decide what Streamlet's grant helpers (``execute-api:Invoke`` on route
ARNs) and direct-mode DynamoDB/S3 policies allow, as the IAM User Guide documents it:

Supported
    - Documents: ``Version`` ``"2012-10-17"`` (required), ``Id``, ``Statement`` as one object
      or a list. Statements: ``Sid``, ``Effect`` (``Allow``/``Deny``, case-sensitive),
      ``Action`` or ``NotAction``, ``Resource`` or ``NotResource`` (a string or a list),
      ``Condition``.
    - Evaluation ("Policy evaluation logic", identity-based policies only): an explicit
      Deny wins, else an Allow allows, else the request is implicitly denied.
    - Action: ``*`` and ``?`` wildcards; prefix and name case-insensitive
      (``iam:ListAccessKeys`` is ``IAM:listaccesskeys``).
    - Resource: case-sensitive; ``*`` and ``?`` stay inside one of the ARN's first five
      colon-separated segments, except that "If the * wildcard is the last character of a
      resource ARN segment, it can expand to match beyond the colon boundaries"; in the
      resource part (after the fifth colon) they match anything, ``/`` and ``:`` included.
    - Condition operators ``StringEquals``, ``StringNotEquals``, ``StringEqualsIgnoreCase``,
      ``StringNotEqualsIgnoreCase``, ``StringLike``, ``StringNotLike`` (``*``/``?``), ``Bool``,
      ``Null``; the ``IfExists`` suffix (not on Null); ``ForAllValues:``/``ForAnyValue:``
      on the string operators. Operators, and keys under one operator, are ANDed; a key's
      values are ORed (NORed for a negated operator). Key names are case-insensitive.
    - A key missing from the context makes a positive operator false and a negated one
      true, ``...IfExists`` true, ``ForAllValues`` true and ``ForAnyValue`` false (an empty
      list counts as missing); ``Null`` is true for ``"true"`` exactly when it is missing.

Unsupported, refused with a ValueError naming the element rather than guessed at:
``Principal``/``NotPrincipal`` (resource-based policies), policy variables ``${...}``,
other Versions, numeric/date/IP/ARN/binary operators, set operators on Bool and Null,
unknown elements, and a list-valued context key under a plain operator ("Multivalued
context keys require a condition set operator").

Example:
    >>> grant = Policy.from_json({"Version": "2012-10-17", "Statement": {
    ...     "Sid": "Produce", "Effect": "Allow", "Action": "execute-api:Invoke",
    ...     "Resource": "arn:aws:execute-api:*:*:a1b2/*/POST/"
    ...                 "v3/clusters/*/topics/orders*/records"}})
    >>> arn = execute_api_arn("us-east-1", "123456789012", "a1b2", "$default", "POST",
    ...                       "/v3/clusters/streamlet/topics/orders-eu/records")
    >>> evaluate([grant], "execute-api:Invoke", arn).describe()
    "allowed by statement 'Produce'"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["VERSION", "Context", "Decision", "Policy", "Statement", "arn_match", "evaluate",
           "execute_api_arn", "wildcard_match"]

VERSION = "2012-10-17"
Context = Mapping[str, str | Sequence[str]]
"""Condition keys (any case) to one value, or to a list for a multivalued key."""

_SET_OPERATORS = ("ForAllValues", "ForAnyValue")
_STATEMENT_ELEMENTS = ("Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
                       "Condition")


# ---- wildcards -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "char", "one" (?) or "star" (*)
    char: str = ""
    crosses: bool = True  # whether a wildcard may match ':'


@lru_cache(maxsize=1024)
def _glob_tokens(pattern: str) -> tuple[_Token, ...]:
    return tuple(_Token("star") if c == "*" else _Token("one") if c == "?" else _Token("char", c)
                 for c in pattern)


@lru_cache(maxsize=1024)
def _arn_tokens(pattern: str) -> tuple[_Token, ...]:
    tokens, colons = [], 0
    for i, char in enumerate(pattern):
        in_resource = colons >= 5
        if char == "*":
            ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            tokens.append(_Token("star", crosses=in_resource or ends_segment))
        elif char == "?":
            tokens.append(_Token("one", crosses=in_resource))
        else:
            tokens.append(_Token("char", char))
        colons += char == ":"
    return tuple(tokens)


@lru_cache(maxsize=1024)
def _literals(pattern: str) -> tuple[str, ...]:
    """The literal runs of ``pattern`` between its wildcards (``*``, ``?``)."""
    return tuple(pattern.replace("?", "*").split("*"))


def _may_match(pattern: str, text: str) -> bool:
    """A quick necessary condition: the literal runs appear in order, the first at the
    start and the last at the end (most non-matching names fail here)."""
    runs = _literals(pattern)
    if not text.startswith(runs[0]) or not text.endswith(runs[-1]):
        return False
    if len(runs) == 1:
        return len(text) == len(runs[0])
    position = len(runs[0])
    for run in runs[1:-1]:
        found = text.find(run, position)
        if found < 0:
            return False
        position = found + len(run)
    return position <= len(text) - len(runs[-1])


def _matches(tokens: tuple[_Token, ...], text: str) -> bool:
    """Run the pattern as an NFA over ``text``: linear in both, no backtracking."""
    states = _after_stars(tokens, {0})
    for char in text:
        states = _after_stars(tokens, _step(tokens, states, char))
        if not states:
            return False
    return len(tokens) in states


def _step(tokens: tuple[_Token, ...], states: Iterable[int], char: str) -> set[int]:
    out: set[int] = set()
    for i in states:
        token = tokens[i] if i < len(tokens) else None
        if token is None or (char == ":" and not token.crosses):
            continue
        if token.kind == "star":
            out.add(i)
        elif token.kind == "one" or token.char == char:
            out.add(i + 1)
    return out


def _after_stars(tokens: tuple[_Token, ...], states: Iterable[int]) -> set[int]:
    """``states`` plus every state reached by letting stars match nothing."""
    out = set(states)
    for start in sorted(out):
        i = start
        while i < len(tokens) and tokens[i].kind == "star":
            i += 1
            out.add(i)
    return out


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's string wildcards: ``*`` any run of characters, ``?`` one; nothing else special.

    Example:
        >>> wildcard_match("iam:*AccessKey*", "IAM:ListAccessKeys", ignore_case=True)
        True
    """
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    return _may_match(pattern, value) and _matches(_glob_tokens(pattern), value)


def arn_match(pattern: str, arn: str) -> bool:
    """A ``Resource`` pattern against an ARN, with IAM's segment rules (module docstring).

    Example:
        >>> arn_match("arn:aws:s3:::bucket/*/test/*", "arn:aws:s3:::bucket/1/2/test/3/a.jpg")
        True
    """
    return _may_match(pattern, arn) and _matches(_arn_tokens(pattern), arn)


# ---- conditions ------------------------------------------------------------------------------


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _equals_ignoring_case(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


_TESTS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_equals, False), "StringNotEquals": (_equals, True),
    "StringEqualsIgnoreCase": (_equals_ignoring_case, False),
    "StringNotEqualsIgnoreCase": (_equals_ignoring_case, True),
    "StringLike": (wildcard_match, False), "StringNotLike": (wildcard_match, True),
    "Bool": (_equals_ignoring_case, False),
}


@dataclass(frozen=True)
class _Condition:
    operator: str  # as written, for messages
    base: str  # without set operator and IfExists
    set_operator: str
    if_exists: bool
    key: str  # lower-cased
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, str | tuple[str, ...]]) -> bool:
        found = context.get(self.key)
        missing = found is None or found == ()
        if self.base == "Null":
            return any((value == "true") == missing for value in self.values)
        if found is None or missing:
            return self._when_missing()
        if self.set_operator:
            results = [self._holds_for(v) for v in ((found,) if isinstance(found, str) else found)]
            return all(results) if self.set_operator == "ForAllValues" else any(results)
        if not isinstance(found, str):
            raise ValueError(f"{self.key} has several values in the request context: "
                             f"{self.operator} needs ForAllValues: or ForAnyValue: (multivalued "
                             "context keys require a condition set operator).")
        return self._holds_for(found)

    def _when_missing(self) -> bool:
        if self.if_exists or self.set_operator:
            return self.if_exists or self.set_operator == "ForAllValues"
        return _TESTS[self.base][1]  # a negated operator holds on a missing key

    def _holds_for(self, value: str) -> bool:
        test, negated = _TESTS[self.base]
        return any(test(p, value) for p in self.values) != negated


def _parse_operator(name: str) -> tuple[str, str, bool]:
    """(set operator or "", base operator, IfExists) of a condition operator's name."""
    set_operator, _, base = name.rpartition(":")
    if set_operator and set_operator not in _SET_OPERATORS:
        raise ValueError(f"Unsupported condition set operator in {name!r} (supported: "
                         f"{', '.join(_SET_OPERATORS)}).")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in (*_TESTS, "Null") or (base == "Null" and if_exists):
        raise ValueError(f"Unsupported condition operator {name!r} (supported: "
                         f"{', '.join(_TESTS)}, Null, with IfExists except on Null).")
    if set_operator and base in ("Bool", "Null"):
        raise ValueError(f"Unsupported condition operator {name!r}: set operators apply to "
                         "the string operators only here.")
    return set_operator, base, if_exists


def _conditions(block: Any) -> tuple[_Condition, ...]:
    if not isinstance(block, Mapping):
        raise ValueError("Condition must be an object of operators.")
    out: list[_Condition] = []
    for operator, pairs in block.items():
        set_operator, base, if_exists = _parse_operator(operator)
        if not isinstance(pairs, Mapping) or not pairs:
            raise ValueError(f"Condition operator {operator} needs an object of keys.")
        for key, raw in pairs.items():
            values = _condition_values(raw, f"{operator} {key}")
            if base in ("Bool", "Null") and {v.lower() for v in values} - {"true", "false"}:
                raise ValueError(f"{operator} {key} takes 'true' or 'false', not {values}.")
            out.append(_Condition(operator, base, set_operator, if_exists, key.lower(),
                                  tuple(v.lower() if base == "Null" else v for v in values)))
    return tuple(out)


def _condition_values(raw: Any, where: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(v, str | bool | int | float) for v in items):
        raise ValueError(f"{where}: condition values are strings, booleans or numbers.")
    values = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in items)
    for value in values:
        _refuse_variables(value, where)
    return values


def _refuse_variables(value: str, where: str) -> None:
    if "${" in value:
        raise ValueError(f"Policy variables are not supported ({where}: {value!r}).")


# ---- statements and policies -----------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One parsed statement; :meth:`applies` tells whether it covers a request."""

    sid: str | None
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[_Condition, ...]
    index: int

    @property
    def label(self) -> str:
        return f"statement {self.sid!r}" if self.sid else f"statement #{self.index + 1}"

    def applies(self, action: str, resource: str,
                context: Mapping[str, str | tuple[str, ...]]) -> bool:
        """Whether action, resource and conditions all match (``context`` keys lower-case)."""
        action_hit = any(wildcard_match(p, action, ignore_case=True) for p in self.actions)
        resource_hit = any(arn_match(p, resource) for p in self.resources)
        return (action_hit != self.not_action and resource_hit != self.not_resource
                and all(c.holds(context) for c in self.conditions))


def _statement(raw: Any, index: int) -> Statement:
    if not isinstance(raw, Mapping):
        raise ValueError(f"Statement #{index + 1} is not an object.")
    for element in ("Principal", "NotPrincipal"):
        if element in raw:
            raise ValueError(f"{element} is not supported: it belongs to resource-based "
                             "policies, and this evaluates identity-based ones.")
    unknown = sorted(set(raw) - set(_STATEMENT_ELEMENTS))
    if unknown:
        raise ValueError(f"Unsupported statement element {unknown[0]!r}.")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f"Effect must be 'Allow' or 'Deny', not {raw.get('Effect')!r}.")
    actions, not_action = _either(raw, "Action", "NotAction")
    resources, not_resource = _either(raw, "Resource", "NotResource")
    for action in actions:
        if action != "*" and ":" not in action:
            raise ValueError(f"Action {action!r} is not '*' or 'service:action'.")
    for resource in resources:
        _refuse_variables(resource, "Resource")
    return Statement(raw.get("Sid"), raw["Effect"], actions, not_action, resources,
                     not_resource, _conditions(raw.get("Condition", {})), index)


def _either(raw: Mapping[str, Any], name: str, negated: str) -> tuple[tuple[str, ...], bool]:
    """The values of exactly one of ``name`` and ``negated``, and whether it was ``negated``."""
    if (name in raw) == (negated in raw):
        raise ValueError(f"A statement needs exactly one of {name} and {negated}.")
    element = name if name in raw else negated
    value = raw[element]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{element} must be a string or a non-empty list of strings.")
    return tuple(values), element == negated


@dataclass(frozen=True)
class Policy:
    """A parsed identity-based policy document.

    Example:
        >>> Policy.from_json('{"Version": "2012-10-17", "Statement": []}')
        Traceback (most recent call last):
        ValueError: Statement must be an object or a non-empty list of objects.
    """

    statements: tuple[Statement, ...]
    name: str = ""

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any], name: str = "") -> Policy:
        """Parse a policy from its JSON text or an already-decoded dict."""
        raw = json.loads(document) if isinstance(document, str | bytes) else document
        if not isinstance(raw, Mapping):
            raise ValueError("A policy document is a JSON object.")
        unknown = sorted(set(raw) - {"Version", "Id", "Statement"})
        if unknown:
            raise ValueError(f"Unsupported policy element {unknown[0]!r}.")
        if raw.get("Version") != VERSION:
            raise ValueError(f"Version must be {VERSION!r}, not {raw.get('Version')!r}.")
        found = raw.get("Statement")
        items = [found] if isinstance(found, Mapping) else found
        if not isinstance(items, list) or not items:
            raise ValueError("Statement must be an object or a non-empty list of objects.")
        return cls(tuple(_statement(s, i) for i, s in enumerate(items)), name)


# ---- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether a request is allowed, and which statement decided (None: implicit deny)."""

    allowed: bool
    action: str
    resource: str
    policy: Policy | None = None
    statement: Statement | None = None

    def describe(self) -> str:
        """For error messages: "explicitly denied by statement 'X' of policy 'p'", ..."""
        if self.statement is None:
            return f"implicitly denied: no statement allows {self.action} on {self.resource}"
        verb = "allowed" if self.allowed else "explicitly denied"
        of = f" of policy {self.policy.name!r}" if self.policy and self.policy.name else ""
        return f"{verb} by {self.statement.label}{of}"


def evaluate(policies: Iterable[Policy], action: str, resource: str,
             context: Context | None = None) -> Decision:
    """IAM's decision for identity-based ``policies``: explicit Deny, else Allow, else deny."""
    keys = _lowered(context or {})
    allowing: tuple[Policy, Statement] | None = None
    for policy in policies:
        for statement in policy.statements:
            if not statement.applies(action, resource, keys):
                continue
            if statement.effect == "Deny":
                return Decision(False, action, resource, policy, statement)
            allowing = allowing or (policy, statement)
    if allowing is None:
        return Decision(False, action, resource)
    return Decision(True, action, resource, *allowing)


def _lowered(context: Context) -> dict[str, str | tuple[str, ...]]:
    return {key.lower(): value if isinstance(value, str) else tuple(value)
            for key, value in context.items()}


def execute_api_arn(region: str, account: str, api_id: str, stage: str, method: str,
                    path: str) -> str:
    """The ``execute-api:Invoke`` resource of one request to an HTTP API route.

    Example:
        >>> execute_api_arn("us-east-1", "123456789012", "a1b2", "$default", "get",
        ...                 "/v3/clusters")
        'arn:aws:execute-api:us-east-1:123456789012:a1b2/$default/GET/v3/clusters'
    """
    return (f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method.upper()}/"
            f"{path.removeprefix('/')}")
