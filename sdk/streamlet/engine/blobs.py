"""Large batches in S3: written once under a content hash, never overwritten."""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from . import schema as s
from .aws import error_code, translated


class BlobStore:
    """Puts and gets batch blobs in the deployment's bucket."""

    def __init__(self, s3: Any, names: s.Names) -> None:
        self._s3 = s3
        self._bucket = names.bucket

    def put(self, topic_id: str, partition: int, batch: bytes) -> str:
        """Store ``batch`` (base offset still 0) and return its key.

        ``If-None-Match: *`` makes the write create-only; a 412 means the same
        content already sits under that key (a retry), which is what we wanted.
        """
        key = s.blob_key(topic_id, partition, hashlib.sha256(batch).hexdigest())
        try:
            with translated("write a batch to S3"):
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=batch, IfNoneMatch="*")
        except ClientError as e:
            if error_code(e) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
        return key

    def get(self, key: str) -> bytes:
        with translated("read a batch from S3"):
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            data: bytes = body.read()
        return data

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        deleted = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                with translated("delete batch blobs"):
                    self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys})
                deleted += len(keys)
        return deleted
