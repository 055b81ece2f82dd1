#!/usr/bin/env python3
"""The CDK app: `cdk synth` / `cdk deploy` (or `python app.py` to synthesize offline).

Context: `-c prefix=NAME` (table prefix, default "streamlet"),
`-c removal=destroy` for throwaway dev stacks (default: retain data).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "sdk"))

import aws_cdk as cdk

from infra import StreamletStack


def main() -> None:
    # Under the CDK CLI, CDK_OUTDIR is set; `python app.py` alone writes to ./cdk.out.
    app = cdk.App(outdir=None if "CDK_OUTDIR" in os.environ else "cdk.out")
    prefix = app.node.try_get_context("prefix") or "streamlet"
    removal = cdk.RemovalPolicy.DESTROY if app.node.try_get_context("removal") == "destroy" \
        else cdk.RemovalPolicy.RETAIN
    StreamletStack(
        app, "Streamlet", prefix=prefix, removal_policy=removal,
        env=cdk.Environment(account=os.getenv("CDK_DEFAULT_ACCOUNT"),
                            region=os.getenv("CDK_DEFAULT_REGION")),
    )
    app.synth()


if __name__ == "__main__":
    main()
