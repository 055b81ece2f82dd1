"""The ``streamlet`` command line (needs the ``streamlet[cli]`` extra: typer and rich)."""

from .app import app, main

__all__ = ["app", "main"]
