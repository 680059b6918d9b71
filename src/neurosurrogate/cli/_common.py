"""Helpers shared by CLI commands: error reporting, atomic output folders, summaries."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import typer
import xarray as xr
from rich.console import Console
from rich.table import Table

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print a clear error and return an Exit(2) to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@contextlib.contextmanager
def atomic_folder(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` only when the block succeeds (no partial output)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
