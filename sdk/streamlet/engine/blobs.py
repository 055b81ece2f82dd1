"""Large batches in S3: written once under a fresh name, never overwritten.

Each append writes its own object (a retry of the same append reuses it), so no two batch
items ever share an object and the archiver may delete a blob once its batch is archived.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import schema
from .aws import error_code, gone_if_missing, translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, ObjectTypeDef


class BlobStore:
    """Puts and gets batch blobs in the deployment's bucket."""

    def __init__(self, s3: S3Client, names: schema.Names) -> None:
        self._s3 = s3
        self._bucket = names.bucket

    def put(self, ref: schema.PartitionRef, batch: bytes) -> str:
        """Store ``batch`` (base offset still 0) under a new key and return the key.

        ``If-None-Match: *`` makes the write create-only; a 412 can only mean that our
        own earlier attempt landed (its reply was lost), which is what we wanted.
        """
        key = ref.blob_key(uuid.uuid4().hex)
        try:
            with translated("write a batch to S3"):
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=batch, IfNoneMatch="*")
        except ClientError as e:
            if error_code(e) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
        return key

    def get(self, key: str) -> bytes:
        with gone_if_missing(f"read batch blob {key}"):
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            data: bytes = body.read()
        return data

    def delete_older_than(self, prefix: str, cutoff: datetime) -> int:
        """Delete objects under ``prefix`` last written before ``cutoff``; returns how many."""
        return self.delete_prefix(prefix, lambda o: o["LastModified"] < cutoff)

    def delete_prefix(self, prefix: str, select: Callable[[ObjectTypeDef], bool] | None = None
                      ) -> int:
        """Delete every object under ``prefix``; returns how many."""
        deleted = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        with translated(f"list or delete objects under {prefix}"):  # pages load lazily
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": o["Key"]} for o in page.get("Contents", [])
                    if select is None or select(o)]
                if keys:
                    self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys})
                    deleted += len(keys)
        return deleted
