"""ODYNN thesis experiments (chapter 4): fits of LI/SHH/CHH on noisy simulated data, tap withdrawal, locomotion.

Each experiment is an :class:`OdynnExperiment` (thesis settings by default, a ``quick`` size for tests) and
:func:`run_experiment` builds its target data, runs the population fit with checkpoints and writes the run folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..fit.population import FitProblem, FitResult, FitSettings, Measurements, fit_population
from ..fit.report import write_fit_run
from ..fit.space import ParameterSpace
from ..models.circuit import load_circuit
from ..models.neurons import neuron_model
from ..simulate import simulate_population, stack_models
from ._run import RunFolder
from .odynn_table import EXPERIMENTS as EXPERIMENTS
from .odynn_table import QUICK as QUICK
from .odynn_table import OdynnExperiment as OdynnExperiment
from .odynn_table import experiment as experiment


def box_currents(n: int, duration: float, dt: float, amplitude: float, n_inputs: int = 1, seed: int = 0):
    """``n`` input currents made of one to three box pulses (as in the thesis' examples), shape (n, time, inputs).

    Example: ``10 * ((t > 200) & (t < 600)) + 20 * ((t > 800) & (t < 1000))``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration / dt))) * dt
    out = np.zeros((n, t.size, n_inputs))
    for i in range(n):
        for k in range(n_inputs):
            for _ in range(rng.integers(1, 4)):
                start = rng.uniform(0.05, 0.75) * duration
                stop = start + rng.uniform(0.08, 0.35) * duration
                out[i, :, k] += rng.uniform(0.3, 1.0) * amplitude * ((t > start) & (t < stop))
    return out


def tap_currents(
    n: int,
    duration: float,
    dt: float,
    amplitude: float,
    sensors: tuple[str, ...],
    groups: tuple[tuple[str, ...], ...],
    seed: int = 0,
    tap_length: float = 150.0,
) -> np.ndarray:
    """``n`` sequences of mechanical taps on a circuit's touch sensors, shape (n, time, len(sensors)).

    A tap is a stereotyped box pulse (``tap_length`` ms at ``amplitude``) delivered to every sensor of one group (e.g.
    the anterior pair AVM/ALM or the posterior pair PVD/PLM) or to all of them (a whole-body tap). Each stimulus holds
    one tap of every kind, in random order at random, non-overlapping times, so every stimulus (train or test) shows
    the circuit each kind of tap in a different context.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration / dt))) * dt
    columns = [[sensors.index(s) for s in g] for g in groups]
    kinds = [*columns, sorted(set(sum(columns, [])))]
    slots = np.linspace(0.04, 0.96, len(kinds) + 1) * duration  # one tap per slot: no overlap
    length = min(tap_length, 0.8 * (slots[1] - slots[0]))
    out = np.zeros((n, t.size, len(sensors)))
    for i in range(n):
        for k, kind in enumerate(rng.permutation(len(kinds))):
            start = rng.uniform(slots[k], slots[k + 1] - length)
            out[i][:, kinds[kind]] += (amplitude * ((t >= start) & (t < start + length)))[:, None]
    return out


def _target_model(exp: OdynnExperiment):
    if exp.circuit is None:
        return neuron_model(exp.model).default(1)
    return load_circuit(exp.circuit, neuron=exp.model, grouped=exp.grouped)


def build_problem(
    exp: OdynnExperiment, seed: int = 0, fixed: tuple[str, ...] = ()
) -> tuple[FitProblem, Any, dict]:
    """Target model, simulated (noisy) data and the fit problem of an experiment.

    Returns:
        (problem, target model, clean data {"train": Measurements, "test": Measurements}).
    """
    target = _target_model(exp)
    if exp.target == "wave":
        return _wave_problem(exp, target, seed, fixed)
    n_inputs = len(target.sensors) if exp.circuit is not None else 1
    record = target.outputs if exp.circuit is not None else None
    if exp.tap_groups:
        cur = tap_currents(
            exp.n_train + exp.n_test, exp.duration, exp.dt, exp.amplitude, tuple(target.sensors), exp.tap_groups,
            seed=1000 + seed,
        )
    else:
        cur = box_currents(
            exp.n_train + exp.n_test, exp.duration, exp.dt, exp.amplitude, n_inputs, seed=1000 + seed
        )
    traj = simulate_population(stack_models([target]), cur, dt=exp.dt, record=record)
    v = np.asarray(traj.V[0], float)
    ca = None if traj.Ca is None else np.asarray(traj.Ca[0], float)
    rng = np.random.default_rng(2000 + seed)

    def noisy(x):
        return None if x is None else (x + rng.normal(0.0, exp.noise, x.shape) if exp.noise else x)

    v_n, ca_n, cur_n = noisy(v), noisy(ca), noisy(cur)
    split = exp.n_train

    def meas(a, b, c, sl):
        return Measurements(a[sl], b[sl], None if c is None else c[sl])

    train = meas(cur_n, v_n, ca_n, slice(0, split))
    test = meas(cur_n, v_n, ca_n, slice(split, None)) if exp.n_test else None
    clean = {"train": meas(cur, v, ca, slice(0, split)), "test": meas(cur, v, ca, slice(split, None))}
    space = ParameterSpace(target, g_max=exp.g_max, fixed=fixed)
    problem = FitProblem(
        space, train, test, dt=exp.dt, record=record, w_ca=exp.w_ca if ca is not None else 0.0
    )
    return problem, target, clean


def travelling_wave(
    duration: float,
    dt: float,
    n: int,
    *,
    shift: float = 64.0,
    period: float = 1500.0,
    low: float = -60.0,
    high: float = -25.0,
) -> np.ndarray:
    """The thesis' 'redefined' forward-locomotion target: one smooth oscillation, delayed by ``shift`` ms from each
    neuron to the next (shape (time, n), mV).

    The thesis took DB1's trace from Lung et al.'s circuit (not available here); a smoothed square wave of the same
    role stands in for it.
    """
    t = np.arange(int(round(duration / dt)))[:, None] * dt - shift * np.arange(n)[None, :]
    phase = np.sin(2 * np.pi * t / period)
    return low + (high - low) * 0.5 * (1 + np.tanh(3.0 * phase))


def _wave_problem(exp: OdynnExperiment, target, seed: int, fixed: tuple[str, ...]):
    steps = int(round(exp.duration / exp.dt))
    rng = np.random.default_rng(2000 + seed)
    cur = np.full((1, steps, len(target.sensors)), exp.amplitude)
    clean = travelling_wave(exp.duration, exp.dt, target.n)[None]
    v = clean + rng.normal(0.0, exp.noise, clean.shape)
    train = Measurements(cur, v)
    space = ParameterSpace(target, g_max=exp.g_max, fixed=fixed)
    problem = FitProblem(space, train, None, dt=exp.dt, record=target.names)
    return problem, None, {"train": Measurements(cur, clean), "test": None}


def run_experiment(
    exp: OdynnExperiment,
    out: str | Path,
    *,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    callback=None,
    problem: FitProblem | None = None,
    fixed: tuple[str, ...] = (),
) -> tuple[FitResult, dict]:
    """Run one experiment and write its run folder (config, checkpoint, figures, metrics, report).

    Args:
        exp: the experiment definition (see :func:`experiment`).
        out: run folder.
        seed: seed of the population draw and of the data noise.
        resume: continue from ``out/checkpoint.npz``.
        progress: Rich progress bar.
        callback: forwarded to :func:`~neurosurrogate.fit.fit_population`.
        problem: a prebuilt problem (e.g. from a dataset) instead of the experiment's simulated data.
        fixed: parameters kept at the target's (default) values.

    Returns:
        (fit result, metrics dict).
    """
    config = {
        "experiment": dataclasses.asdict(exp),
        "seed": seed,
        "fixed": list(fixed),
        "backend": jax.default_backend(),
    }
    run = RunFolder(out, config)
    if problem is None:
        problem, target, _ = build_problem(exp, seed, fixed=fixed)
    else:
        target = None
    run.log.info("fitting %s: %d free parameters, %s", exp.name, problem.space.size, problem.space.describe())
    result = fit_population(
        problem,
        exp.settings(seed),
        checkpoint=run.path / "checkpoint.npz",
        resume=resume,
        progress=progress,
        callback=callback,
    )
    extra: dict[str, Any] = {"experiment": exp.name, "noise_std": exp.noise, "thesis": exp.thesis}
    if target is not None and exp.circuit is None and exp.model.upper() == "LI":
        best = result.best_parameters()
        extra["relative_errors"] = {
            k: abs(best[k][0] / float(np.asarray(getattr(target, k))[0]) - 1.0) for k in ("C_m", "g_L", "E_L")
        }
    metrics = write_fit_run(
        run,
        result,
        title=f"ODYNN {exp.name}",
        target=target,
        threshold=exp.threshold,
        extra_metrics=extra,
        notes=f"Gaussian noise std {exp.noise} on target records and fitted input currents.",
    )
    return result, metrics


def describe_experiments() -> Mapping[str, str]:
    """Name -> one-line description for the CLI."""
    return {
        k: f"{e.model}{' on ' + e.circuit if e.circuit else ''}: {e.thesis}" for k, e in EXPERIMENTS.items()
    }


def problem_from_dataset(
    path: str | Path,
    exp: OdynnExperiment,
    *,
    fixed: tuple[str, ...] = (),
    record: tuple[str, ...] | None = None,
) -> FitProblem:
    """A fit problem from a trajectories store (Zarr: V, current, optional Ca over sample/time/channel).

    The first ``exp.n_train`` samples train, the next ``exp.n_test`` test. ``dt`` comes from the store's ``dt``
    attribute and the target stride from ``sample_dt / dt``.
    """
    from ..data.store import load_dataset

    ds = load_dataset(path, variables=["V", "current"], dims=["sample", "time", "channel"])
    n = ds.sizes["sample"]
    if exp.n_train + exp.n_test > n:
        raise ValueError(
            f"invalid --n-train/--n-test: got {exp.n_train} + {exp.n_test} but {path} holds {n} samples. "
            "Ask for fewer stimuli"
        )
    dt = float(ds.attrs.get("dt", exp.dt))
    stride = max(1, int(round(float(ds.attrs.get("sample_dt", dt)) / dt)))
    cur = np.asarray(ds["current"].values, float)
    if stride > 1:
        cur = np.repeat(cur, stride, axis=1)
    v = np.asarray(ds["V"].values, float)
    ca = np.asarray(ds["Ca"].values, float) if "Ca" in ds else None
    template = _target_model(exp)
    channels = tuple(str(c) for c in ds["channel"].values)
    if record is None and exp.circuit is not None:
        record = channels
    if exp.circuit is None and len(channels) != template.n:
        template = neuron_model(exp.model).default(len(channels))

    def meas(sl):
        return Measurements(cur[sl], v[sl], None if ca is None else ca[sl])

    train = meas(slice(0, exp.n_train))
    test = meas(slice(exp.n_train, exp.n_train + exp.n_test)) if exp.n_test else None
    space = ParameterSpace(template, g_max=exp.g_max, fixed=fixed)
    problem = FitProblem(
        space, train, test, dt=dt, record=record, stride=stride, w_ca=exp.w_ca if ca is not None else 0.0
    )
    problem.check()
    return problem


def run_lstm_experiment(
    out: str | Path,
    *,
    quick: bool = False,
    iterations: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Thesis 4.2.4: a 2 x 50 LSTM neuron trained on the CHH experiment's noisy data (same seed, same splits).

    Writes config.json, lstm_neuron.eqx (``eqx.tree_serialise_leaves``), figures, metrics.json and report.html.
    """
    import equinox as eqx
    import matplotlib.pyplot as plt

    from ..report.html import write_report
    from ..surrogates.lstm_neuron import _traces, train_lstm_neuron

    chh = experiment("chh", quick=quick)
    iterations = iterations or (10 if quick else 600)
    config = {
        "experiment": "lstm",
        "data": dataclasses.asdict(chh),
        "iterations": iterations,
        "lr": 0.01,
        "decay": 0.95,
        "layers": 2,
        "hidden": 50,
        "seed": seed,
    }
    run = RunFolder(out, config)
    problem, _, _ = build_problem(chh, seed)
    model, info = train_lstm_neuron(
        problem.train,
        problem.test,
        iterations=iterations,
        seed=seed,
        hidden=8 if quick else 50,
        progress=progress,
    )
    eqx.tree_serialise_leaves(run.path / "lstm_neuron.eqx", model)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(info["history"])
    ax.set_xlabel("iteration")
    ax.set_ylabel("train loss")
    fig.tight_layout()
    fig.savefig(run.figure("losses"), dpi=90)
    plt.close(fig)
    figures = [("train loss", run.figure("losses"))]
    for split in ("train", "test"):
        data = getattr(problem, split)
        v, ca = (np.asarray(x) for x in _traces(model, jax.numpy.asarray(data.currents, "float32")))
        s = v.shape[0]
        fig, axes = plt.subplots(2, s, figsize=(3.2 * s, 4.4), squeeze=False, sharex=True)
        for j in range(s):
            axes[0, j].plot(data.V[j], color="tab:red", lw=0.6)
            axes[0, j].plot(v[j], color="tab:blue", lw=0.9)
            axes[1, j].plot(data.Ca[j], color="tab:red", lw=0.6)
            axes[1, j].plot(ca[j], color="tab:blue", lw=0.9)
        axes[0, 0].set_ylabel("V (mV)")
        axes[1, 0].set_ylabel("Ca")
        fig.suptitle(f"LSTM neuron, {split} (red: target, blue: LSTM)")
        fig.tight_layout()
        fig.savefig(run.figure(f"lstm_{split}"), dpi=80)
        plt.close(fig)
        figures.append((f"{split} stimuli", run.figure(f"lstm_{split}")))
    metrics = {
        "experiment": "lstm",
        "train_loss": info["train_loss"],
        "test_loss": info["test_loss"],
        "iterations": iterations,
        "wall_time_s": info["wall_time_s"],
        "noise_std": chh.noise,
        "thesis": "LSTM loss 6.14 beside CHH 5.17",
    }
    run.write_metrics(metrics)
    write_report(
        run.path / "report.html",
        "ODYNN LSTM neuron on the CHH data",
        [("Metrics", metrics), ("Figures", figures)],
    )
    return metrics


def synthetic_recording(
    path: str | Path,
    *,
    minutes: float = 33.0,
    interval_ms: float = 340.0,
    on: float = 10.0,
    seed: int = 0,
    noise: float = 0.01,
) -> Path:
    """Write an NWB file with the fluorescence of a simulated AVA-like CHH neuron (stand-in for a real recording).

    The neuron (default CHH parameters) receives an on/off current switching after exponentially distributed dwell
    times (mean 30 s), smoothed by a Gaussian; its calcium goes through the GCaMP5K Hill relation (thesis eq. 4.1)
    and Gaussian noise of std ``noise`` is added.
    """
    from ..data.nwb import hill_fluorescence, on_off_current, write_fluorescence_nwb
    from ..models.neurons import CElegansHH
    from ..simulate import simulate

    rng = np.random.default_rng(seed)
    steps = int(round(minutes * 60_000 / interval_ms))
    state = np.zeros(steps)
    t, on_state = 0, False
    while t < steps:
        dwell = max(1, int(rng.exponential(30_000 / interval_ms)))
        state[t : t + dwell] = float(on_state)
        t += dwell
        on_state = not on_state
    current = on_off_current(state, on=on, threshold=0.5, sigma_samples=2.0)
    traj = simulate(CElegansHH.default(), current, dt=interval_ms)
    fluo = hill_fluorescence(np.asarray(traj.Ca[:, 0])) + rng.normal(0.0, noise, steps)
    return write_fluorescence_nwb(
        path, fluo, interval_ms, name="AVA", description="simulated CHH neuron (AVA-like)"
    )


def run_calcium_experiment(
    out: str | Path,
    *,
    nwb: str | Path | None = None,
    series: str | None = None,
    roi: int = 0,
    on_current: float = 10.0,
    minutes: float | None = None,
    quick: bool = False,
    population: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    lr: float = 0.1,
) -> tuple[FitResult, dict]:
    """Thesis 4.1: fit CHH calcium to a fluorescence trace at the recording's sampling interval (340 ms).

    The first half of the trace trains, the second half tests; the input is the Gaussian-smoothed on/off current
    derived from the trace. Without ``nwb`` a synthetic recording from a simulated neuron is written first.
    """
    from ..data.nwb import on_off_current, read_fluorescence_nwb
    from ..models.neurons import CElegansHH

    population = population or (6 if quick else 100)
    iterations = iterations or (8 if quick else 400)
    config = {
        "experiment": "calcium",
        "nwb": str(nwb) if nwb else None,
        "series": series,
        "roi": roi,
        "on_current": on_current,
        "population": population,
        "iterations": iterations,
        "seed": seed,
        "lr": lr,
        "decay": 0.92,
    }
    run = RunFolder(out, config)
    if nwb is None:
        nwb = synthetic_recording(
            run.path / "synthetic_recording.nwb", minutes=minutes or (2.0 if quick else 33.0), seed=seed
        )
    trace, interval = read_fluorescence_nwb(nwb, series, roi)
    if minutes is not None and nwb is not None:
        trace = trace[: int(round(minutes * 60_000 / interval))]
    current = on_off_current(trace, on=on_current)
    half = trace.size // 2
    # both halves get the same length (one compilation); the last sample is dropped for odd lengths
    cur = np.stack([current[:half], current[half : 2 * half]])[..., None]
    ca = np.stack([trace[:half], trace[half : 2 * half]])[..., None]
    train = Measurements(cur[:1], np.zeros_like(ca[:1]), ca[:1])
    test = Measurements(cur[1:], np.zeros_like(ca[1:]), ca[1:])
    space = ParameterSpace(CElegansHH.default())
    problem = FitProblem(space, train, test, dt=interval, w_v=0.0, w_ca=1.0)
    # lr0 = 0.1 (ODYNN's code default for neurons): with lr0 = 1 every member fell onto the constant-calcium plateau
    settings = FitSettings(population=population, iterations=iterations, lr=lr, seed=seed, checkpoint_every=50)
    result = fit_population(
        problem, settings, checkpoint=run.path / "checkpoint.npz", resume=resume, progress=progress
    )
    extra = {
        "experiment": "calcium",
        "sample_interval_ms": interval,
        "samples": int(trace.size),
        "thesis": "real AVA recording: best loss 1.03, 41 of 100 below the plateau",
    }
    metrics = write_fit_run(
        run,
        result,
        title="ODYNN CHH on calcium imaging",
        extra_metrics=extra,
        notes=f"Fluorescence from {nwb}; on/off current {on_current} uA/cm2 smoothed by a "
        "Gaussian of 2 samples; calcium fitted directly to the indicator values.",
    )
    return result, metrics
