"""Local principals: IAM users of the local gateway, each an access key and its policies.

``streamlet local --principal NAME=policy.json`` makes one per flag (access key ``NAME``, a
random secret printed at start, the file's identity policy); the default principal, the
local credentials, is an administrator (:data:`ADMIN_POLICY`), so clients that know
nothing of principals keep working. Policies are evaluated by :mod:`streamlet.policy`.

Example:
    >>> [p.arn for p in default_principals(None)]
    ['arn:aws:iam::000000000000:user/streamlet-local']
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..policy import Policy
from .credentials import LOCAL_CREDENTIALS
from .sigv4 import LOCAL_ACCOUNT, REGION

__all__ = ["ADMIN_POLICY", "CallerPolicies", "Principal", "default_principals"]

ADMIN_POLICY = Policy.from_json({"Version": "2012-10-17", "Statement": [{
    "Sid": "LocalAdministrator", "Effect": "Allow", "Action": "execute-api:Invoke",
    "Resource": "*"}]}, "local administrator")
"""The default principal's policy: every route (what ``grant_admin`` gives on AWS)."""
_PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


# ---- principals --------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A local IAM user: ``arn:aws:iam::000000000000:user/NAME``, its key and policies.

    Example:
        >>> Principal("billing", "billing", "s3cret", (ADMIN_POLICY,)).arn
        'arn:aws:iam::000000000000:user/billing'
    """

    name: str
    access_key: str
    secret_key: str
    policies: tuple[Policy, ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{self.name}"

    @classmethod
    def from_file(cls, name: str, policy_file: str | Path) -> Principal:
        """``streamlet local --principal NAME=policy.json``: access key NAME, a random
        secret (printed at start), the file's identity policy (ValueError if IAM
        features the evaluator does not support are used: see :mod:`streamlet.policy`)."""
        if not _PRINCIPAL_NAME.fullmatch(name) or name == LOCAL_CREDENTIALS[0]:
            raise ValueError(f"Principal name {name!r}: 1 to 64 letters, digits, '.', '_' or "
                             f"'-', and not {LOCAL_CREDENTIALS[0]!r}.")
        path = Path(policy_file)
        policy = Policy.from_json(path.read_text(), f"{name}:{path.name}")
        return cls(name, name, secrets.token_urlsafe(18), (policy,))


def default_principals(credentials: Mapping[str, str] | None) -> list[Principal]:
    """Administrators for the given keys (default: the local credentials)."""
    pairs = credentials or dict([LOCAL_CREDENTIALS])
    return [Principal(key, key, secret, (ADMIN_POLICY,)) for key, secret in pairs.items()]


@dataclass(frozen=True)
class CallerPolicies:
    """What the handlers' ``bound_grants`` reads: each caller's policies, by ARN."""

    by_caller: Mapping[str, tuple[Policy, ...]]
    region: str = REGION

    def policies(self, caller_arn: str, api_arn: str) -> tuple[Policy, ...]:
        return self.by_caller.get(caller_arn, ())
