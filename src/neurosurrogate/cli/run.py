"""`neurosurrogate run`: the main job, end to end on small defaults, with one HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import console, fail


@app.command("run")
def run_command(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/quickstart"),
    circuit: Annotated[str, typer.Option(help="circuit to simulate")] = "tap_withdrawal",
    dt: Annotated[float, typer.Option(help="integration step, ms")] = 0.3,
    duration: Annotated[float, typer.Option(help="simulated time per stimulus, ms")] = 1200.0,
    quick: Annotated[bool, typer.Option("--quick", help="smallest fit and surrogate stages (smoke run)")] = False,
) -> None:
    """Walk the pipeline end to end and write OUT/report.html."""
    from ..experiments.quickstart import run_quickstart

    try:
        with console.status("running the pipeline: simulate, fit parameters, train a surrogate, report"):
            report = run_quickstart(out, circuit=circuit, dt=dt, duration=duration, quick=quick)
    except (ValueError, FileExistsError) as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]done[/]: report at [bold]{report}[/] (run folder {out})")
