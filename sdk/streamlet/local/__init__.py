"""The embedded local platform (needs the ``streamlet[local]`` extra: moto).

Names are imported on first use, so ``streamlet.local.credentials`` (what transports
read for loopback endpoints) loads without the platform.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .platform import LocalPlatform, SerializedApp, moto_app
    from .serialize import serialized_moto

__all__ = ["LocalPlatform", "SerializedApp", "moto_app", "serialized_moto"]
_HOMES = {"LocalPlatform": "platform", "SerializedApp": "platform", "moto_app": "platform",
          "serialized_moto": "serialize"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
