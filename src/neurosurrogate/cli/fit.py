"""`neurosurrogate fit` and `neurosurrogate reproduce odynn-<experiment>` (ODYNN thesis chapter 4)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, reproduce_app
from ._common import console, fail


def _print_metrics(metrics: dict, out: Path) -> None:
    table = Table(title=f"fit results ({out})")
    table.add_column("metric")
    table.add_column("value")
    for k, v in metrics.items():
        table.add_row(str(k), f"{v:.6g}" if isinstance(v, float) else str(v))
    console.print(table)


def _run(
    exp, out: Path, seed: int, resume: bool, fixed: tuple[str, ...] = (), data: Path | None = None
) -> None:
    from ..experiments.odynn import problem_from_dataset, run_experiment

    try:
        problem = problem_from_dataset(data, exp, fixed=fixed) if data is not None else None
        _, metrics = run_experiment(exp, out, seed=seed, resume=resume, problem=problem, fixed=fixed)
    except ValueError as err:
        raise fail(str(err)) from None
    _print_metrics(metrics, out)


@app.command("fit")
def fit_command(
    model: Annotated[str, typer.Option(help="neuron model: LI, SHH or CHH")] = "CHH",
    circuit: Annotated[
        str | None, typer.Option(help="packaged circuit (tap_withdrawal, forward_locomotion)")
    ] = None,
    grouped: Annotated[bool, typer.Option(help="share one neuron parameter set across the circuit")] = False,
    data: Annotated[
        Path | None, typer.Option(help="trajectories store (Zarr) to fit; default: simulated data")
    ] = None,
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/fit"),
    population: Annotated[int, typer.Option(help="members trained in parallel")] = 100,
    iterations: Annotated[int, typer.Option(help="Adam steps")] = 400,
    lr: Annotated[float, typer.Option(help="initial learning rate lr0")] = 1.0,
    decay: Annotated[float, typer.Option(help="staircase rate: lr0 * decay^floor(step/9)")] = 0.92,
    relative_steps: Annotated[
        bool, typer.Option(help="lr is the fraction of each parameter's initialisation range moved per step")
    ] = False,
    screen: Annotated[
        int, typer.Option(help="random search first: draw this many candidates, keep the best POPULATION (0: off)")
    ] = 0,
    restart_above: Annotated[
        float | None, typer.Option(help="re-draw members that stall above this train loss (default: never)")
    ] = None,
    restart_window: Annotated[int, typer.Option(help="iterations over which a stall is judged")] = 100,
    shard: Annotated[
        bool, typer.Option(help="split the population over the CPU cores (small populations of big circuits)")
    ] = False,
    dt: Annotated[float, typer.Option(help="time step, ms")] = 1.0,
    duration: Annotated[float, typer.Option(help="stimulus length, ms (simulated data)")] = 1200.0,
    n_train: Annotated[int, typer.Option(help="train stimuli")] = 5,
    n_test: Annotated[int, typer.Option(help="test stimuli")] = 5,
    amplitude: Annotated[float, typer.Option(help="largest input current, uA/cm2 (simulated data)")] = 20.0,
    noise: Annotated[float, typer.Option(help="std of Gaussian noise on targets and fitted currents")] = 1.5,
    w_ca: Annotated[float, typer.Option(help="weight of the calcium term")] = 0.0,
    g_max: Annotated[float | None, typer.Option(help="upper bound of synaptic conductances")] = None,
    fixed: Annotated[
        list[str] | None, typer.Option(help="parameter kept at its default (repeatable)")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="iterations between checkpoints")] = 50,
    threshold: Annotated[float | None, typer.Option(help="count members whose loss is below this")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.npz")] = False,
) -> None:
    """Fit a neuron model or circuit with a random population trained by Adam (ODYNN hybrid optimisation).

    Simulated data for a circuit with touch sensors (tap_withdrawal) are sequences of mechanical taps; otherwise
    random box currents on every input."""
    from ..experiments.odynn_table import OdynnExperiment
    from ..models.circuit import circuit_tap_groups

    try:
        exp = OdynnExperiment(
            name="fit",
            model=model,
            circuit=circuit,
            grouped=grouped,
            population=population,
            iterations=iterations,
            lr=lr,
            decay=decay,
            relative_steps=relative_steps,
            screen=screen,
            restart_above=restart_above,
            restart_window=restart_window,
            shard=shard,
            dt=dt,
            duration=duration,
            n_train=n_train,
            n_test=n_test,
            amplitude=amplitude,
            noise=noise,
            w_ca=w_ca,
            g_max=g_max,
            checkpoint_every=checkpoint_every,
            tap_groups=circuit_tap_groups(circuit) if circuit is not None and data is None else (),
        )
        exp.settings(seed)
    except ValueError as err:
        raise fail(str(err)) from None
    _run(exp, out, seed, resume, tuple(fixed or ()), data)


def _register(name: str) -> None:
    from ..experiments.odynn_table import EXPERIMENTS

    exp = EXPERIMENTS[name]

    def command(
        out: Annotated[Path, typer.Option(help="run folder")] = Path(f"runs/odynn-{name}"),
        quick: Annotated[bool, typer.Option(help="tiny size for smoke tests")] = False,
        population: Annotated[int | None, typer.Option(help="override the population size")] = None,
        iterations: Annotated[int | None, typer.Option(help="override the number of iterations")] = None,
        lr: Annotated[float | None, typer.Option(help="override the initial learning rate")] = None,
        decay: Annotated[float | None, typer.Option(help="override the staircase rate")] = None,
        relative_steps: Annotated[
            bool | None, typer.Option("--relative-steps/--absolute-steps", help="override the step scaling")
        ] = None,
        screen: Annotated[int | None, typer.Option(help="override the random-search size (0: off)")] = None,
        restart_above: Annotated[
            float | None, typer.Option(help="override: re-draw members that stall above this train loss (0: never)")
        ] = None,
        restart_window: Annotated[
            int | None, typer.Option(help="override: iterations over which a stall is judged")
        ] = None,
        shard: Annotated[
            bool | None, typer.Option("--shard/--no-shard", help="override: split the population over the CPU cores")
        ] = None,
        seed: Annotated[int, typer.Option(help="random seed")] = 0,
        resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.npz")] = False,
    ) -> None:
        from ..experiments.odynn_table import experiment

        try:
            exp = experiment(
                name, quick=quick, population=population, iterations=iterations, lr=lr, decay=decay,
                relative_steps=relative_steps, screen=screen, shard=shard,
                restart_above=restart_above or None, restart_window=restart_window,
            )
            if restart_above == 0:
                exp = dataclasses.replace(exp, restart_above=None)
            exp.settings(seed)
        except ValueError as err:
            raise fail(str(err)) from None
        _run(exp, out, seed, resume)

    command.__doc__ = (
        f"ODYNN {name}: {exp.model}{' on ' + exp.circuit if exp.circuit else ''} (thesis: {exp.thesis})."
    )
    reproduce_app.command(f"odynn-{name}")(command)


@reproduce_app.command("odynn-lstm")
def lstm_command(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/odynn-lstm"),
    quick: Annotated[bool, typer.Option(help="tiny size for smoke tests")] = False,
    iterations: Annotated[
        int | None, typer.Option(help="override the number of iterations (default 600)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed (same data as odynn-chh with this seed)")] = 0,
) -> None:
    """ODYNN lstm: a 2 x 50 LSTM neuron on the CHH experiment's data (thesis: loss 6.14 beside CHH's 5.17)."""
    from ..experiments.odynn import run_lstm_experiment

    _print_metrics(run_lstm_experiment(out, quick=quick, iterations=iterations, seed=seed), out)


@reproduce_app.command("odynn-calcium")
def calcium_command(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/odynn-calcium"),
    nwb: Annotated[
        Path | None, typer.Option(help="NWB recording; default: a synthetic one from a simulated neuron")
    ] = None,
    series: Annotated[str | None, typer.Option(help="time-series name inside the NWB file")] = None,
    roi: Annotated[int, typer.Option(help="ROI column of a multi-ROI series")] = 0,
    on_current: Annotated[float, typer.Option(help="'on' input current, uA/cm2 (thesis: 0.5-10)")] = 10.0,
    minutes: Annotated[
        float | None, typer.Option(help="use this many minutes of the recording (thesis: 33)")
    ] = None,
    quick: Annotated[bool, typer.Option(help="tiny size for smoke tests")] = False,
    population: Annotated[int | None, typer.Option(help="override the population size (100)")] = None,
    iterations: Annotated[int | None, typer.Option(help="override the number of iterations (400)")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.npz")] = False,
    lr: Annotated[float, typer.Option(help="initial learning rate lr0")] = 0.1,
) -> None:
    """ODYNN calcium: CHH fitted to a fluorescence trace (NWB) at its sampling interval (thesis: best loss 1.03)."""
    from ..experiments.odynn import run_calcium_experiment

    try:
        _, metrics = run_calcium_experiment(
            out,
            nwb=nwb,
            series=series,
            roi=roi,
            on_current=on_current,
            minutes=minutes,
            quick=quick,
            population=population,
            iterations=iterations,
            seed=seed,
            resume=resume,
            lr=lr,
        )
    except (ValueError, ImportError) as err:
        raise fail(str(err)) from None
    _print_metrics(metrics, out)


def _register_all() -> None:
    from ..experiments.odynn_table import EXPERIMENTS

    for name in EXPERIMENTS:
        _register(name)


_register_all()
