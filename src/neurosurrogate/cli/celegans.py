# ruff: noqa: B008  (Typer declares options as call defaults)
"""C. elegans commands: the FCM dataset (c302 in NEURON) and the forward-crawling scenario check."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ._app import dataset_app, reproduce_app
from ._common import fail

console = Console()


def _parse_amplitudes(items: list[str] | None) -> dict[str, float]:
    from ..connectome.dataset import DEFAULT_AMPLITUDES

    amps = dict(DEFAULT_AMPLITUDES)
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--amplitude {item!r} must look like NEURON=nA, e.g. AVBL=0.1")
        name, value = item.split("=", 1)
        try:
            amps[name.strip()] = float(value)
        except ValueError as exc:
            raise typer.BadParameter(f"--amplitude {item!r}: {value!r} is not a number of nA") from exc
    return amps


def _executor(kind: str, workers: int | None, address: str | None):
    from ..parallel import make_executor

    return make_executor(kind, workers, address=address)


def _split_names(text: str | None) -> tuple[str, ...] | None:
    return None if not text else tuple(n.strip() for n in text.split(",") if n.strip())


@dataset_app.command("celegans-fcm")
def celegans_fcm(
    out: Path = typer.Option(..., "--out", help="Target Zarr store (e.g. data/fcm_0p5.zarr)."),
    samples: int = typer.Option(40, help="Number of stimuli."),
    sample_dt: float = typer.Option(0.5, "--sample-dt", help="Recording step, ms."),
    dt: float = typer.Option(0.1, "--dt", help="Integration step, ms (<= 0.1)."),
    reference_dt: float = typer.Option(
        0.025, "--reference-dt", help="Fine step for the integration-error check, ms."
    ),
    duration: float = typer.Option(500.0, help="Stimulus window, ms."),
    warmup: float = typer.Option(500.0, help="Zero-input warm-up before the window, ms."),
    seed: int = typer.Option(0, help="Stimulus design seed."),
    parameter_set: str = typer.Option("D1", "--parameter-set", help="c302 parameter set: D1, D or C1."),
    cells: str = typer.Option(None, help="Comma-separated neuron subset (default: all 302)."),
    amplitude: list[str] = typer.Option(None, "--amplitude", help="Peak current NEURON=nA (repeatable)."),
    ablate: str = typer.Option(None, help="Comma-separated neurons to disconnect."),
    executor: str = typer.Option("process", help="process (this machine) or ray (extra [distributed])."),
    workers: int = typer.Option(
        None, help="Worker processes (process default 1; ray default: cluster CPUs)."
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Ray cluster address (default: local instance)."
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="c302 build cache (default ~/.cache/neurosurrogate)."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
) -> None:
    """Simulate the forward-crawling scenario in NEURON (c302) and write a Zarr dataset (resumable)."""
    from ..connectome.build import NeuronUnavailableError
    from ..connectome.dataset import FCMConfig, generate_fcm_dataset

    try:
        cfg = FCMConfig(
            samples=samples,
            sample_dt=sample_dt,
            dt=dt,
            reference_dt=reference_dt,
            duration=duration,
            warmup=warmup,
            seed=seed,
            parameter_set=parameter_set,
            cells=_split_names(cells),
            amplitudes=_parse_amplitudes(amplitude),
            ablate=_split_names(ablate) or (),
        )
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite or choose another --out")
        ex = _executor(executor, workers, ray_address)
    except (ValueError, FileExistsError, NeuronUnavailableError, ImportError) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"c302 {cfg.parameter_set}, dt {cfg.dt} ms, recorded every {cfg.sample_dt} ms, warm-up "
        f"{cfg.warmup} ms, {cfg.samples} samples; executor {executor} ({ex.workers} worker(s))"
    )
    console.print("amplitudes (peak, nA): " + ", ".join(f"{k} {v:g}" for k, v in cfg.amplitudes.items()))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("simulations (zero input + samples + reference)", total=None)
        try:
            ds, summary = generate_fcm_dataset(
                cfg,
                out,
                executor=ex,
                cache_dir=cache_dir,
                overwrite=overwrite,
                log=lambda m: bar.console.print(m),
                progress=lambda d, t: bar.update(task, completed=d, total=t),
            )
        except (ValueError, FileExistsError, NeuronUnavailableError) as exc:
            raise fail(str(exc)) from exc
        except RuntimeError as exc:
            console.print(f"[red]failed:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from exc
        finally:
            ex.close()
    _print_summary(cfg, summary, ds)
    console.print(f"wrote {out}")


def _print_summary(cfg, summary: dict, ds) -> None:
    t = Table(title="FCM dataset quality (mV)")
    for col in (
        "output",
        "zero-input drift",
        "signal SD",
        "dt error max",
        "dt error RMS",
        "signal/max err",
        "signal/RMS err",
    ):
        t.add_column(col)
    for name in cfg.outputs:
        t.add_row(
            name,
            f"{summary['zero_input_drift_mV'][name]:.3g}",
            f"{summary['signal_sd_mV'][name]:.3g}",
            f"{summary['integration_error_max_mV'][name]:.3g}",
            f"{summary['integration_error_rms_mV'][name]:.3g}",
            f"{summary['signal_to_max_error'][name]:.3g}",
            f"{summary['signal_to_rms_error'][name]:.3g}",
        )
    console.print(t)
    rng = ", ".join(f"{k} [{a:.1f}, {b:.1f}]" for k, (a, b) in summary["stimulated_voltage_range_mV"].items())
    console.print(f"stimulated soma voltage range (mV): {rng}")
    console.print(
        f"time {summary['generation_wall_s']:.1f} s in all; {summary['simulations_this_run']} simulations "
        f"this run in {summary['simulation_wall_s_this_run']:.1f} s; per simulation "
        f"{summary['seconds_per_simulation_mean']:.2f} s for {cfg.duration:g} ms (window only, one core)"
    )
    counts = {s: int((ds.split.values == s).sum()) for s in ("train", "validation", "test")}
    console.print(f"split: {counts}; time points per sample: {ds.sizes['time']}")


@reproduce_app.command("celegans-scenario")
def celegans_scenario(
    out: Path = typer.Option(..., "--out", help="Run folder (figure, metrics.json, report.html)."),
    parameter_set: str = typer.Option("D1", "--parameter-set", help="c302 parameter set: D1, D or C1."),
    cells: str = typer.Option(None, help="Comma-separated neuron subset (default: all 302)."),
    dt: float = typer.Option(0.1, "--dt", help="Integration step, ms."),
    warmup: float = typer.Option(500.0, help="Warm-up, ms."),
    amplitude: list[str] = typer.Option(None, "--amplitude", help="Peak current NEURON=nA (repeatable)."),
    workers: int = typer.Option(1, help="Worker processes."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="c302 build cache."),
) -> None:
    """Forward crawling: response of DB1, LUAL, PVR, VB1 to PLM+AVB input, intact vs AVB- and AVA-ablated."""
    from ..connectome.build import NeuronUnavailableError
    from ..connectome.scenario import run_scenario_check

    try:
        metrics = run_scenario_check(
            out,
            parameter_set=parameter_set,
            cells=_split_names(cells),
            dt=dt,
            warmup=warmup,
            amplitudes=_parse_amplitudes(amplitude),
            workers=workers,
            cache_dir=cache_dir,
            log=console.print,
        )
    except (ValueError, NeuronUnavailableError) as exc:
        raise fail(str(exc)) from exc
    t = Table(title="Mean stimulus-driven response in the stimulus (mV; output minus zero-input run)")
    t.add_column("condition")
    outs = list(next(iter(metrics["response_mV"].values())))
    for o in outs:
        t.add_column(o)
    for cond, vals in metrics["response_mV"].items():
        t.add_row(cond, *(f"{vals[o]:+.2f}" for o in outs))
    console.print(t)
    console.print(f"wrote {out}/report.html")
