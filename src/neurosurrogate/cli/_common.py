"""Helpers shared by CLI commands: error reporting, atomic output folders, summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
import xarray as xr
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._io import atomic_folder as _atomic_folder

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print a clear error and return an Exit(2) to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def atomic_folder(out: Path, *, overwrite: bool):
    """A temporary folder that replaces ``out`` only when the command succeeds (see ``_io.atomic_folder``)."""
    return _atomic_folder(out, overwrite=overwrite, require_empty=True)


def trace_summary(ds: xr.Dataset, title: str) -> Table:
    """A Rich table: per sample and channel, the min / mean / max voltage."""
    table = Table(title=title)
    for col in ("sample", "channel", "V min (mV)", "V mean (mV)", "V max (mV)"):
        table.add_column(col, justify="right" if "V" in col else "left")
    labels = ds["label"].values if "label" in ds.coords else ds.sample.values
    for i, label in enumerate(labels):
        for name in ds.channel.values:
            v = ds["V"].isel(sample=i).sel(channel=name).values
            table.add_row(str(label), str(name), f"{np.min(v):.2f}", f"{np.mean(v):.2f}", f"{np.max(v):.2f}")
    return table
