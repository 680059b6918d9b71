"""The main job: walk the pipeline end to end on small defaults and write one HTML report.

Stages (each a plain function writing into the run folder):
1. simulate the tap-withdrawal circuit under demonstration stimuli -> traces.zarr + figure;
2. solver stability: CHH under the semi-implicit scheme vs explicit Euler at growing dt (thesis fig. 3.11);
3. fit parameters: an ODYNN population fit of a leaky integrator to noisy simulated data (sub-folder fit_li/);
4. train a surrogate: the beta-cell recurrent map on a Zarr dataset of ODE pairs, with its analysis
   (sub-folder betacell_map/).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.store import save_dataset
from ..models.neurons import CElegansHH
from ..models.solvers import ExplicitEuler, SemiImplicit
from ..report.html import write_report
from ..report.plots import plot_solver_stability, plot_traces
from ..simulate import simulate
from ..stimuli import Step
from ._run import RunFolder
from .simulation import default_drives, resolve_model, simulate_drives


def stage_simulate(run: RunFolder, *, circuit: str, dt: float, duration: float) -> dict:
    """Simulate ``circuit`` under its demonstration stimuli; returns metrics."""
    model = resolve_model(circuit)
    drives = default_drives(model)
    simulate_drives(model, drives[:1], duration=min(duration, 10 * dt), dt=dt)  # compile once, time the real run
    t0 = time.perf_counter()
    ds = simulate_drives(model, drives, duration=duration, dt=dt, model_config={"model": circuit})
    seconds = time.perf_counter() - t0
    save_dataset(ds, run.path / "traces.zarr", kind="trajectories", overwrite=True)
    plot_traces(ds, run.figure("traces"), title=f"{circuit}: membrane potential, calcium and input")
    outputs = list(getattr(model, "outputs", ())) or list(ds.channel.values)
    metrics = {
        "simulate.model": circuit,
        "simulate.stimuli": int(ds.sizes["sample"]),
        "simulate.steps_per_stimulus": int(ds.sizes["time"]),
        "simulate.dt_ms": dt,
        "simulate.wall_s": seconds,
    }
    for name in outputs:
        v = ds["V"].sel(channel=name).values
        metrics[f"simulate.{name}_range_mV"] = [float(v.min()), float(v.max())]
    run.log.info("simulated %s: %s", circuit, metrics)
    return metrics


def stage_solver_stability(run: RunFolder, *, dts=(1.0, 9.0, 100.0, 340.0)) -> dict:
    """CHH under a 10 uA/cm2 box current with both solvers at several dt (thesis fig. 3.11)."""
    neuron = CElegansHH.default()
    duration = 3400.0
    box = Step(10.0, 500.0, 2500.0)
    traces: dict[str, list[np.ndarray]] = {"semi-implicit (eq. 3.22)": [], "explicit Euler (eq. 3.25)": []}
    times, metrics = [], {}
    for dt in dts:
        steps = int(round(duration / dt))
        current = box(np.arange(steps) * dt, dt)
        times.append(np.arange(steps) * dt)
        for name, solver in zip(traces, (SemiImplicit(), ExplicitEuler()), strict=True):
            v = np.asarray(simulate(neuron, current, dt=dt, solver=solver).V[:, 0])
            traces[name].append(v)
            key = "semi_implicit" if "semi" in name else "explicit"
            bounded = bool(np.isfinite(v).all() and np.abs(v).max() < 200.0)
            metrics[f"stability.{key}.dt{dt:g}"] = (
                f"bounded, V in [{v.min():.1f}, {v.max():.1f}] mV" if bounded else "diverged (|V| > 200 mV or NaN)"
            )
    plot_solver_stability(list(dts), traces, times, run.figure("solver_stability"))
    return metrics


def stage_fit(run: RunFolder, *, quick: bool) -> dict:
    """Population fit of LI to noisy simulated data (ODYNN thesis 4.2) in ``fit_li/``; returns metrics."""
    from .odynn import experiment, run_experiment

    sizes = {"population": 8, "iterations": 60, "duration": 400.0, "n_train": 2, "n_test": 1} if quick else {
        "population": 32, "iterations": 300, "duration": 800.0, "n_train": 3, "n_test": 2}
    exp = experiment("li", checkpoint_every=0, **sizes)
    t0 = time.perf_counter()
    result, metrics = run_experiment(exp, run.path / "fit_li", progress=False)
    best = result.best_parameters()
    out = {f"fit.best_{k}": float(best[k][0]) for k in ("C_m", "g_L", "E_L")}
    out.update({"fit.target": "C_m 1, g_L 0.1, E_L -60", "fit.population": exp.population,
                "fit.iterations": exp.iterations, "fit.best_test_loss_mV2": float(metrics["best_test_loss"]),
                "fit.wall_s": time.perf_counter() - t0})
    return out


def stage_surrogate(run: RunFolder, *, quick: bool) -> dict:
    """Train the beta-cell recurrent map (seed 003) and analyse it in ``betacell_map/``; returns metrics."""
    from .betacell_map import BetaCellMapConfig, run_betacell_map

    cfg = (BetaCellMapConfig.quick(epochs=4, n_fp=5, n_bif=3, n_starts=10) if quick
           else BetaCellMapConfig.quick(epochs=300, n_hidden=64, n_chunks=24, max_pairs=40_000, n_bif=9))
    t0 = time.perf_counter()
    m = run_betacell_map(cfg, run.path / "betacell_map", progress=False)
    val = m.get("val_mse", {})
    out = {"surrogate.model": "beta-cell recurrent map (paper eq. 8)", "surrogate.epochs": cfg.epochs,
           "surrogate.val_mse": next(iter(val.values())) if isinstance(val, dict) and val else val,
           "surrogate.training_pairs": cfg.max_pairs, "surrogate.wall_s": time.perf_counter() - t0}
    return out


def _figures(folder: Path, names: list[tuple[str, str]]) -> list[tuple[str, Path]]:
    return [(caption, folder / "figures" / name) for caption, name in names if (folder / "figures" / name).exists()]


def run_quickstart(out: str | Path, *, circuit: str = "tap_withdrawal", dt: float = 0.3,
                   duration: float = 1200.0, quick: bool = False) -> Path:
    """Run every stage into ``out`` and write ``report.html``; returns the report path.

    Args:
        out: run folder.
        circuit, dt, duration: the simulation stage.
        quick: smallest sizes of the fit and surrogate stages (a smoke run for tests).
    """
    config = {"job": "quickstart", "circuit": circuit, "dt": dt, "duration": duration, "quick": quick}
    run = RunFolder(out, config)
    t0 = time.perf_counter()
    metrics = {}
    metrics.update(stage_simulate(run, circuit=circuit, dt=dt, duration=duration))
    metrics.update(stage_solver_stability(run))
    metrics.update(stage_fit(run, quick=quick))
    metrics.update(stage_surrogate(run, quick=quick))
    metrics["total_wall_s"] = time.perf_counter() - t0
    run.write_metrics(metrics)
    sim = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("simulate.")}
    stab = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("stability.")}
    report = write_report(
        run.path / "report.html",
        "neurosurrogate: quick-start run",
        [
            ("1. Simulation", f"<p>The {circuit} circuit (ODYNN thesis) with C. elegans HH neurons, simulated with "
                              f"the semi-implicit scheme (thesis eq. 3.22-3.24) at dt = {dt} ms. "
                              "Traces are stored in <code>traces.zarr</code>.</p>"),
            ("Simulation numbers", sim),
            ("Traces", [("membrane potential, calcium and input current per stimulus", run.figure("traces"))]),
            ("2. Solver stability", "<p>One CHH neuron under a 10 uA/cm2 box current: the semi-implicit scheme "
                                    "stays bounded up to dt = 340 ms while explicit Euler blows up (thesis fig. "
                                    "3.11).</p>"),
            ("Stability numbers", stab),
            ("Stability", [("voltage for both solvers at growing dt", run.figure("solver_stability"))]),
            ("3. Parameter fitting", "<p>A random population of leaky integrators trained in parallel by Adam "
                                     "through the simulator on noisy simulated data (ODYNN hybrid fitting); full "
                                     "report in <code>fit_li/report.html</code>.</p>"),
            ("Fit numbers", {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("fit.")}),
            ("Fit", _figures(run.path / "fit_li", [("loss of every member", "losses.png"),
                                                  ("best member vs target (test)", "best_test.png")])),
            ("4. Surrogate", "<p>The per-variable recurrent map of the stiff beta-cell model trained on ODE pairs "
                             "stored as Zarr, then iterated and analysed; full report in "
                             "<code>betacell_map/report.html</code>.</p>"),
            ("Surrogate numbers", {k.split(".", 1)[1]: v for k, v in metrics.items()
                                   if k.startswith("surrogate.")}),
            ("Surrogate", _figures(run.path / "betacell_map", [("ODE vs map time series", "time_series.png"),
                                                              ("bifurcation diagrams", "bifurcation.png")])),
        ],
        footer=f"total {metrics['total_wall_s']:.1f} s; config: {config}",
    )
    run.log.info("report written to %s", report)
    return report
