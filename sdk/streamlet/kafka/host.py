"""What the API handlers need from the gateway that runs them (kept apart so the
handler modules and the server do not import each other)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from ..engine import Engine
    from .auth import Authenticator

P = ParamSpec("P")
T = TypeVar("T")


class Host(Protocol):
    """The running gateway, as its handlers see it."""

    engine: Engine
    auth: Authenticator
    node_id: int

    @property
    def advertised(self) -> tuple[str, int]: ...

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
