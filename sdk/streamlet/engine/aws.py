"""The AWS boundary: botocore failures become Streamlet errors, and storage is provisioned."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from ..errors import RequestTimedOut, Throttled
from .schema import Names, table_specs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

RETRIES = {"mode": "legacy", "total_max_attempts": 4}
"""botocore retries for Streamlet's clients: legacy mode keeps DynamoDB's quick schedule
(50, 100, 200 ms) where standard mode sleeps up to 1 s, 2 s, ... on a throttle; past
these attempts the callers (producer, consumer, group member) retry with their own
backoff, so a log append never waits seconds for one throttled request."""

UNPROCESSED_ATTEMPTS = 8
UNPROCESSED_MAX_BACKOFF_S = 2.0
THROTTLE_CODES = frozenset({
    "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "SlowDown", "TooManyRequestsException", "TransactionInProgressException",
})


class ObjectGone(LookupError):
    """Something a reader was pointed at is gone: an S3 object (NoSuchKey), or batches or
    segments the partition head says exist (moved by the archiver or trimmed meanwhile)."""


@contextlib.contextmanager
def gone_if_missing(what: str) -> Iterator[None]:
    """Turn S3's NoSuchKey into ObjectGone, inside ``translated``."""
    try:
        with translated(what):
            yield
    except ClientError as e:
        if error_code(e) not in ("NoSuchKey", "404"):
            raise
        raise ObjectGone(f"{what}: the object is gone") from e


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def cancellation_reasons(error: ClientError) -> list[dict[str, Any]]:
    reasons = error.response.get("CancellationReasons") or []
    return [dict(r) for r in reasons]


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn transient botocore failures (after botocore's own retries) into Streamlet errors.

    ClientErrors that mean something to the caller (conditions, cancellations) pass through.
    """
    try:
        yield
    except ClientError as e:
        code = error_code(e)
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLE_CODES:
            raise Throttled(f"{what}: storage throttled the request ({code}).") from e
        if status >= 500 or code in ("InternalServerError", "ServiceUnavailable"):
            raise RequestTimedOut(f"{what}: storage failed with {code or status}; "
                                  "the request may have been applied.") from e
        raise
    except (ConnectionError, HTTPClientError) as e:
        raise RequestTimedOut(f"{what}: no answer from storage ({type(e).__name__}); "
                              "the request may have been applied.") from e


def conditional(call: Callable[..., Any], what: str, **kwargs: Any) -> bool:
    """Run one conditional write; False (nothing written) if its condition failed.

    Callers turn False into their domain answer (TopicExists, a lost race, ...).
    """
    try:
        with translated(what):
            call(**kwargs)
    except ClientError as e:
        if error_code(e) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def transacted(call: Callable[..., Any], what: str, **kwargs: Any) -> bool:
    """Run one TransactWriteItems; False (nothing written) if it was cancelled (a
    condition failed) or conflicted with another transaction on the same items."""
    try:
        with translated(what):
            call(**kwargs)
    except ClientError as e:
        if error_code(e) not in ("TransactionCanceledException", "TransactionConflictException"):
            raise
        return False
    return True


def items(call: Callable[..., Any], what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paginated Query or Scan (``call`` is ``client.query``/``.scan``)."""
    while True:
        with translated(what):
            page = call(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_write(dynamodb: DynamoDBClient, table: str, requests: list[dict[str, Any]],
                what: str, sleep: Callable[[float], None] = time.sleep) -> None:
    """BatchWriteItem in chunks of 25, resubmitting unprocessed items with backoff.

    DynamoDB returns items it could not write (throttling) as ``UnprocessedItems``; AWS
    asks for exponential backoff before resubmitting them. After
    ``UNPROCESSED_ATTEMPTS`` rounds the rest raise Throttled (the write is idempotent:
    the caller may run it again).
    """
    for i in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: requests[i:i + 25]}
        for attempt in range(UNPROCESSED_ATTEMPTS):
            with translated(what):
                pending = dynamodb.batch_write_item(RequestItems=pending).get(
                    "UnprocessedItems") or {}
            if not pending:
                break
            sleep(random.uniform(0, min(UNPROCESSED_MAX_BACKOFF_S, 0.05 * 2**attempt)))
        else:
            left = sum(len(v) for v in pending.values())
            raise Throttled(f"{what}: {left} items stayed unprocessed after "
                            f"{UNPROCESSED_ATTEMPTS} attempts; retry.")


def ensure_storage(dynamodb: DynamoDBClient, s3: S3Client, names: Names) -> None:
    """Create the tables (with TTL) and the bucket if they do not exist yet."""
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for spec in table_specs(names):
        if spec.name in existing:
            continue
        dynamodb.create_table(**spec.create_table_kwargs())
        dynamodb.get_waiter("table_exists").wait(TableName=spec.name)
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=spec.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=names.bucket)

