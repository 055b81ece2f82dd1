"""Serverless consumption: topics that invoke functions and feed AWS services.

A :class:`Trigger` binds a topic to a function with the semantics of Lambda's Kafka event
source mapping (batching, starting positions, retries, bisection, partial batch
responses, an on-failure destination), or to a sink (S3, Firehose, EventBridge, SQS).
The :class:`Dispatcher` delivers one partition at a time from the trigger's consumer
group, committing after each success; on AWS a DynamoDB stream on the log table wakes it
(``functions/dispatcher.py``), locally :class:`LocalTriggers` does.
"""

from .config import (
    KeyFilter,
    QueueDestination,
    StartingPosition,
    TopicDestination,
    Trigger,
)
from .dispatch import Dispatcher, Result
from .dlq import QueueDeadLetters, TargetUnavailable, TopicDeadLetters
from .event import kafka_event, read_answer
from .targets import Delivered, FunctionTarget, LambdaTarget, LocalContext, Target

__all__ = [
    "Delivered", "Dispatcher", "FunctionTarget", "KeyFilter", "LambdaTarget", "LocalContext",
    "QueueDeadLetters", "QueueDestination", "Result", "StartingPosition", "Target",
    "TargetUnavailable", "TopicDeadLetters", "TopicDestination", "Trigger", "kafka_event",
    "read_answer",
]
