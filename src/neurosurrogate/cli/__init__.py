"""Command-line interface: `neurosurrogate --help`.

Each command lives in its own module and registers itself on the Typer apps of `_app` when imported here.
"""

from __future__ import annotations

from . import betacell as _betacell  # noqa: F401
from ._app import app


def main() -> None:
    """Entry point of the `neurosurrogate` console script."""
    app()


__all__ = ["app", "main"]
