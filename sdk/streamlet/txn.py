"""Transactions' rules, shared by the clients, the handlers and the engine: names, timeouts
and the limits a commit must fit (see :mod:`streamlet.engine.transactions` for how they
work).

Example:
    >>> validate_transactional_id("enricher-1")
    'enricher-1'
    >>> check_size(offsets=98, batches=10)  # 100 items: the record, the id, 98 leases
"""

from __future__ import annotations

import re

from ._values import is_int
from .errors import InvalidRequest, TransactionTooLarge

TIMEOUT_DEFAULT_MS = 60_000
TIMEOUT_MAX_MS = 900_000
"""Kafka's transaction.max.timeout.ms: no reader waits longer behind an open transaction."""
MAX_TRANSACT_ITEMS = 100
"""DynamoDB's limit on one TransactWriteItems: the record, the id's item and the leases."""
MAX_BATCHES = 10_000
"""Batches one transaction may list (its record stays far below DynamoDB's 400 KB)."""
KEEP_S = 30 * 86400
"""How long a record is kept after its transaction ended (or timed out): far beyond the
time its batches stay hot and unarchived (segment.ms); archived segments carry the
aborted ranges themselves."""
_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


def validate_transactional_id(transactional_id: object) -> str:
    """Kafka's topic alphabet, 1 to 249 characters (safe in paths, keys and IAM patterns);
    InvalidRequest otherwise."""
    if not isinstance(transactional_id, str) or not _ID.fullmatch(transactional_id) \
            or transactional_id in (".", ".."):
        raise InvalidRequest(f"Transactional id {transactional_id!r} must be 1 to 249 ASCII "
                             "letters, digits, '.', '_' or '-' (and not '.' or '..').")
    return transactional_id


def validate_timeout(timeout_ms: object) -> int:
    if not is_int(timeout_ms) or not 1000 <= timeout_ms <= TIMEOUT_MAX_MS:
        raise InvalidRequest(f"transaction_timeout_ms={timeout_ms!r}: expected 1000 to "
                             f"{TIMEOUT_MAX_MS} (Kafka's transaction.max.timeout.ms).")
    return timeout_ms


def check_size(offsets: int, batches: int) -> None:
    """TransactionTooLarge if a commit would exceed one TransactWriteItems (the record,
    the id's item and one lease per input partition) or the record's batch list."""
    items_needed = 2 + offsets
    if items_needed > MAX_TRANSACT_ITEMS:
        raise TransactionTooLarge(
            f"A transaction commits in one DynamoDB transaction of at most "
            f"{MAX_TRANSACT_ITEMS} items: its record, its transactional id and one per input "
            f"partition whose offsets it sends; offsets for {offsets} partitions need "
            f"{items_needed}. Commit offsets for at most {MAX_TRANSACT_ITEMS - 2} partitions "
            "per transaction.")
    if batches > MAX_BATCHES:
        raise TransactionTooLarge(f"A transaction lists at most {MAX_BATCHES} batches; this "
                                  f"one has {batches}. Commit more often (or send larger "
                                  "batches: linger_ms, batch_size).")
