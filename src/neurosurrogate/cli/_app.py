"""The Typer application objects; command modules register themselves on these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="neurosurrogate",
    help="Simulate biophysical neural systems, train fast surrogates of them and fit their parameters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce_app = typer.Typer(help="Reproduce an experiment of the papers (writes a run folder).", no_args_is_help=True)
dataset_app = typer.Typer(help="Build training datasets (Zarr) from simulations.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
app.add_typer(dataset_app, name="dataset")
