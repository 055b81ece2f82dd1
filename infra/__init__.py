"""The CDK app's constructs: Streamlet's storage built from the engine's schema module."""

from .stack import StreamletStack
from .storage import StreamletStorage

__all__ = ["StreamletStack", "StreamletStorage"]
