"""The stack ``app.py`` deploys."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from .storage import StreamletStorage


class StreamletStack(Stack):
    """Streamlet's storage, with the values clients need as outputs."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str = "streamlet",
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = StreamletStorage(self, "Storage", prefix=prefix,
                                        removal_policy=removal_policy)
        names = self.storage.names
        CfnOutput(self, "DirectEndpoint", value=f"direct://{prefix}?bucket={names.bucket}",
                  description="STREAMLET_ENDPOINT for the SDK and CLI (direct mode)")
        CfnOutput(self, "TopicsTable", value=names.topics_table)
        CfnOutput(self, "LogTable", value=names.log_table)
        CfnOutput(self, "DataBucket", value=self.storage.bucket.bucket_name)
