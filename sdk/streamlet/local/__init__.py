"""The embedded local platform (needs the ``streamlet[local]`` extra: moto)."""

from .platform import LocalPlatform, SerializedApp, moto_app

__all__ = ["LocalPlatform", "SerializedApp", "moto_app"]
