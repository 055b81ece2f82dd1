"""The CDK app's constructs: Streamlet on DynamoDB, S3, Lambda and API Gateway.

``StreamletPlatform`` is the reusable construct; ``StreamletStack`` is what ``app.py``
deploys. Only ``streamlet.engine.schema`` is imported from the SDK.
"""

from .api import StreamletApi
from .bundling import LocalPipBundler, lambda_code
from .functions import StreamletFunctions
from .kafka import StreamletKafkaGateway
from .monitoring import StreamletMonitoring
from .platform import StreamletPlatform
from .stack import StreamletStack
from .storage import StreamletStorage

__all__ = ["LocalPipBundler", "StreamletApi", "StreamletFunctions", "StreamletKafkaGateway",
           "StreamletMonitoring", "StreamletPlatform", "StreamletStack", "StreamletStorage",
           "lambda_code"]
