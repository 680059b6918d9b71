"""`neurosurrogate reproduce betacell-map`: the neural-network recurrent map of the beta-cell model (seed 003)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import reproduce_app
from ._common import console, fail


@reproduce_app.command("betacell-map")
def betacell_map_command(
    system: Annotated[
        str, typer.Option(help="'original' (g_K2 = 0) or 'modified' (bistable, g_K2 = 0.12)")
    ] = "original",
    dt: Annotated[
        list[float] | None,
        typer.Option(
            help="map time step(s), s: 0.005, 0.0025, 0.001 (repeat the "
            "option; the first is the main one; default: all three)"
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/betacell-map-SYSTEM)")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="small sizes (about a minute) for tests and smoke runs")
    ] = False,
    epochs: Annotated[int | None, typer.Option(help="training epochs (default 1000; 40 with --quick)")] = None,
    seed: Annotated[int, typer.Option(help="seed of data and weights")] = 0,
    loss: Annotated[
        str,
        typer.Option(
            help="training loss: 'state' (the paper's MSE of the standardised u(t + dt); default), 'increment' "
            "(each variable's increment weighted by 1/its variance) or 'sobolev' (increment plus the exact flow's "
            "derivatives at the same points; much better fixed points and eigenvalues, docs/betacell.md)"
        ),
    ] = "state",
    jacobian_weight: Annotated[float, typer.Option(help="weight of the first derivatives in --loss sobolev")] = 10.0,
    hessian_weight: Annotated[
        float, typer.Option(help="weight of the second derivatives in --loss sobolev (0 = none; ~3x slower)")
    ] = 0.0,
    weight_decay: Annotated[
        float,
        typer.Option(
            help="decoupled weight decay (AdamW) of the input weights a, A', B; 0 = plain Adam (default); 0.03 "
            "gives better fixed points and eigenvalues (docs/betacell.md)"
        ),
    ] = 0.0,
    f: Annotated[
        str,
        typer.Option(
            "--f",
            help="activation f of eq. 14: one name for all subnetworks or one per variable V,n,S "
            "(tanh, sigmoid, softplus, identity), e.g. 'tanh,tanh,identity'",
        ),
    ] = "tanh",
    g: Annotated[str, typer.Option("--g", help="activation g of eq. 13 (same forms as --f), e.g. 'identity'")] = "tanh",
    n_chunks: Annotated[
        int | None, typer.Option(help="training trajectory chunks, one random V_S and start each (default 100)")
    ] = None,
    chunk_time: Annotated[float | None, typer.Option(help="length of each training chunk, s (default 20)")] = None,
    transient: Annotated[
        float | None, typer.Option(help="time dropped from each training trajectory before recording, s (default 100)")
    ] = None,
    fast_chunks: Annotated[
        int,
        typer.Option(
            help="extra training chunks recorded from the random start without a transient (the fast transients, "
            "which pass close to the fixed point), e.g. 5000 with --fast-chunk-time 0.4; 0 = none"
        ),
    ] = 0,
    fast_chunk_time: Annotated[float, typer.Option(help="length of each --fast-chunks chunk, s")] = 0.4,
    fp_chunks: Annotated[
        int,
        typer.Option(
            help="extra chunks started next to the ODE's fixed point u* (within the scaled distance 0.3; the other "
            "chunks keep 1 away), for the fixed-point stage of the refinement (--fp-refine-steps), e.g. 10000; 0 = none"
        ),
    ] = 0,
    fp_chunk_time: Annotated[float, typer.Option(help="length of each --fp-chunks chunk, s")] = 0.05,
    fp_refine_steps: Annotated[
        str,
        typer.Option(
            help="Levenberg-Marquardt steps per subnetwork of the fixed-point stage after --refine-steps: the same "
            "pairs plus --fp-refine-pairs pairs of --fp-chunks weighted --fp-refine-weight, Jacobian weight 1; one "
            "count or 'V,n,S', e.g. 200,0,300"
        ),
    ] = "0",
    fp_refine_pairs: Annotated[int, typer.Option(help="--fp-chunks pairs in the fixed-point stage")] = 2000,
    fp_refine_weight: Annotated[float, typer.Option(help="weight of those pairs in the fixed-point stage")] = 100.0,
    start_s: Annotated[
        str | None,
        typer.Option(
            help="range 'LO,HI' of S of the random starts (default 0.17,0.2, the paper's cube); with a short "
            "--transient, e.g. --transient 2 --start-s 0.17,0.25, the data keep S's relaxation toward the fixed point"
        ),
    ] = None,
    refine_steps: Annotated[
        str,
        typer.Option(
            help="Levenberg-Marquardt steps per subnetwork after Adam, on the same loss (0 = none, the paper's "
            "training): one count, or 'V,n,S' counts; e.g. 800 with --loss sobolev gives the best fixed points of "
            "the original system, 800,800,1600 those of the modified one (docs/betacell.md)"
        ),
    ] = "0",
    refine_pairs: Annotated[int, typer.Option(help="training pairs used by the refinement (random subset)")] = 20_000,
    resume: Annotated[bool, typer.Option("--resume", help="continue training from checkpoints in OUT")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train the per-variable map (eq. 8) on ODE trajectories and compare fixed points, eigenvalues and bifurcation
    diagrams with the ODE; writes figures, metrics.json and report.html into OUT."""
    from ..experiments.betacell_map import BetaCellMapConfig, run_betacell_map

    overrides: dict = {
        "system": system,
        "seed": seed,
        "loss": loss,
        "jacobian_weight": jacobian_weight,
        "hessian_weight": hessian_weight,
        "weight_decay": weight_decay,
        "f": f,
        "g": g,
        "refine_pairs": refine_pairs,
        "fast_chunks": fast_chunks,
        "fast_chunk_time": fast_chunk_time,
        "fp_chunks": fp_chunks,
        "fp_chunk_time": fp_chunk_time,
        "fp_refine_pairs": fp_refine_pairs,
        "fp_refine_weight": fp_refine_weight,
    }
    if dt:
        overrides["dts"] = tuple(dt)
    optional = {"epochs": epochs, "transient": transient, "n_chunks": n_chunks, "chunk_time": chunk_time}
    overrides |= {name: value for name, value in optional.items() if value is not None}
    try:
        if start_s is not None:
            parts = start_s.split(",")
            if len(parts) != 2:
                raise ValueError(f"--start-s {start_s!r}: pass two numbers 'LO,HI', e.g. 0.17,0.25")
            overrides["start_s"] = (float(parts[0]), float(parts[1]))
        overrides["refine_steps"] = _step_counts("--refine-steps", refine_steps, "800,800,1600")
        overrides["fp_refine_steps"] = _step_counts("--fp-refine-steps", fp_refine_steps, "200,0,300")
        cfg = BetaCellMapConfig.quick(**overrides) if quick else BetaCellMapConfig(**overrides)
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    out = out if out is not None else Path(f"runs/betacell-map-{system}")
    metrics = run_betacell_map(cfg, out, progress=progress, resume=resume)
    table = Table(title=f"beta-cell map, {system} system")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("validation MSE", metrics["val_mse"]),
        ("max fixed-point distance", metrics["fp_max_distance"]),
        ("max eigenvalue rel. error (V_S <= -35)", metrics["eig_max_rel_err_left_half"]),
        ("transition error (map vs ODE)", metrics["transition_error"]),
    ]
    if system == "modified":
        rows += [
            ("stable interval ODE", metrics.get("stable_interval_ode")),
            ("stable interval map", metrics.get("stable_interval_map")),
        ]
    for name, value in rows:
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"[green]done[/]: {out / 'report.html'}")


def _step_counts(option: str, text: str, example: str) -> int | tuple[int, ...]:
    """``text`` of a steps option: one whole number, or three 'V,n,S' counts (as a tuple)."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: pass one whole number or three 'V,n,S', e.g. 800 or {example}") from None
    return counts[0] if len(counts) == 1 else tuple(counts)
