"""The HTTP API as a fleet of Lambdas, for chaos over the HTTP transport.

A :class:`Fleet` serves the real handlers through the local gateway, but every request
goes to one of several engines (each with its own tail cache and memory of attempts, as
warm Lambda containers have), over AWS clients with injected faults. A
:class:`FaultyHttp` transport loses replies between the API and the SDK (the request
was applied, the client sees a timeout) and crashes the client before or after a call.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from streamlet.engine import Engine
from streamlet.errors import RequestTimedOut
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.local.gateway import Gateway
from streamlet.transport.http import HttpTransport, _Reply
from tests.harness.faults import FaultPlan, SimulatedCrash, install

LAMBDAS = 3


class _FleetGateway(Gateway):
    """A gateway whose every request is served by one engine of the fleet, at random."""

    def __init__(self, engines: list[Engine], seed: int, **options: Any) -> None:
        self._engines = engines
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        super().__init__(engines[0], **options)

    @property  # type: ignore[override]
    def engine(self) -> Engine:
        with self._rng_lock:
            return self._rng.choice(self._engines)

    @engine.setter
    def engine(self, value: Engine) -> None:
        pass  # the fleet is fixed


class Fleet:
    """LAMBDAS engines over faulty clients behind one local gateway."""

    def __init__(self, platform: LocalPlatform, plan: FaultPlan, seed: int,
                 client_timeout: float = 35.0) -> None:
        self.plan = plan
        self.client_timeout = client_timeout
        dynamodb, s3 = platform.client("dynamodb"), platform.client("s3")
        install(dynamodb, plan)
        install(s3, plan)
        engines = [Engine(dynamodb, s3, platform.names) for _ in range(LAMBDAS)]
        self.gateway = _FleetGateway(engines, seed, host="127.0.0.1",
                                     credentials=dict([LOCAL_CREDENTIALS])).start()

    @property
    def url(self) -> str:
        return self.gateway.url

    def stop(self) -> None:
        self.gateway.stop()


class FaultyHttp(HttpTransport):
    """The HTTP transport, with replies lost after the API applied the request and with
    client crashes before or after a call, drawn from a seeded generator."""

    def __init__(self, url: str, seed: int, lost_reply: float = 0.08,
                 crash: float = 0.004, timeout: float = 35.0) -> None:
        import boto3

        key, secret = LOCAL_CREDENTIALS
        super().__init__(url, boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                            region_name="us-east-1"), timeout=timeout)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._lost, self._crash = lost_reply, crash
        self.faults: dict[str, int] = {"lost_reply": 0, "crash": 0, "no_reply": 0}
        self._sleep = self._wait_out

    def _wait_out(self, seconds: float) -> None:
        """An append got no reply at all (a read timeout): count it, then wait out its
        deadline as the real transport does."""
        self.faults["no_reply"] += 1
        time.sleep(max(0.0, seconds))

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]
              ) -> _Reply:
        if self._draw() < self._crash / 2:
            self.faults["crash"] += 1
            raise SimulatedCrash(f"crash before {method} {url}")
        reply = super()._send(method, url, body, headers)
        draw = self._draw()
        if draw < self._crash / 2:
            self.faults["crash"] += 1
            raise SimulatedCrash(f"crash after {method} {url}")
        if draw < self._crash / 2 + self._lost:
            self.faults["lost_reply"] += 1
            raise RequestTimedOut(f"{method} {url}: the reply was lost (injected)")
        return reply
