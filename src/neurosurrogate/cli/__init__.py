"""Command-line interface: `neurosurrogate --help`.

Each command lives in its own module and registers itself on the Typer apps of `_app` when imported here.
"""

from __future__ import annotations

from . import betacell as _betacell  # noqa: F401
from . import celegans as _celegans  # noqa: F401  (registers the C. elegans commands)
from . import fit as _fit  # noqa: F401  (registers `fit` and `reproduce odynn-*`)
from . import run as _run  # noqa: F401
from . import simulate as _simulate  # noqa: F401
from ._app import app


def main() -> None:
    """Entry point of the `neurosurrogate` console script."""
    from .._config import use_host_devices

    use_host_devices()  # one JAX device per core: fits with --shard split their population over them
    app()


__all__ = ["app", "main"]
