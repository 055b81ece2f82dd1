"""What the deployment is built on: ``GET /v1/deployment`` (the admin function).

It answers the endpoint that reaches the deployment's tables and bucket directly,
``{"direct_endpoint": "direct://PREFIX?bucket=BUCKET&region=REGION"}`` (the stack's
``DirectEndpoint`` output; the local platform answers its ``direct+http://`` form), so a
program that serves the engine itself, such as ``streamlet gateway``, can be given the
HTTP API's URL and then use DynamoDB and S3 with its own credentials.

Only administrators may ask: no grant but ``grant_admin`` covers the route (API Gateway
checks it), and whoever runs such a program needs the engine's full access anyway. The
answer holds names, no secret: reaching the storage still takes direct-mode IAM access.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ._runtime import direct_endpoint
from ._shared import new_router

router = new_router()


class Deployment(BaseModel):
    """``GET /v1/deployment``: where this deployment's storage is reached directly."""

    direct_endpoint: str = Field(
        description="The SDK's direct-mode endpoint of this deployment's tables and bucket.",
        examples=["direct://streamlet?bucket=streamlet-data&region=eu-west-1"])


@router.get("/v1/deployment")
def deployment() -> Deployment:
    """The endpoint that reaches this deployment's tables and bucket directly."""
    return Deployment(direct_endpoint=direct_endpoint())
