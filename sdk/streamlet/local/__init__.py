"""The embedded local platform (needs the ``streamlet[local]`` extra: moto)."""

from .platform import LocalPlatform, SerializedApp, moto_app
from .serialize import serialized_moto

__all__ = ["LocalPlatform", "SerializedApp", "moto_app", "serialized_moto"]
