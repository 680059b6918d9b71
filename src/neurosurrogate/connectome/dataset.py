"""Generate the forward-crawling (FCM) high-fidelity dataset: c302 in NEURON, resumable, in parallel workers.

Flow of :func:`generate_fcm_dataset`:
  1. build (or reuse) the compiled c302 network (:func:`~neurosurrogate.connectome.build.build_network`);
  2. design the stimuli (:func:`~neurosurrogate.connectome.fcm.design_stimuli`) and validate them (names,
     shapes, NaN);
  3. run, through an executor, the zero-input run, the ``n`` stimuli, and one reference stimulus again at the
     fine ``reference_dt`` (integration error); each finished simulation is written atomically to
     ``<out>.partial/<key>.npz`` at once, so an interrupted run resumes from there (same command again);
  4. compute the quality numbers (drift of the zero-input run inside the window, stimulus-driven signal per
     output, integration error, their ratio, voltage range of the stimulated cells), choose the split,
     assemble an xarray Dataset and write it with :func:`~neurosurrogate.data.store.save_dataset`; remove the
     partial folder.

Dataset layout (``kind="celegans_fcm"``): ``inputs`` (sample, time, input) nA, ``outputs`` (sample, time,
output) mV, ``input_voltages`` (sample, time, input) mV, ``zero_input_outputs`` (time, output) mV, ``split``
(sample) and ``family`` (sample) labels; coordinates ``time`` (ms from the window start), ``input``,
``output``; attributes with versions, parameter set, dt, sample_dt, warm-up, amplitudes, the stimulus
configuration and the quality numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .._io import atomic_write_bytes, atomic_write_json
from ..data.store import save_dataset
from ..parallel import Executor, ProcessExecutor, run_tasks
from .build import Build, C302Config, build_network, require_neuron, versions
from .fcm import FCM_INPUTS, FCM_OUTPUTS, Stimulus, choose_split, design_stimuli, difficulty
from .worker import SimResult, SimTask, run_task

KIND = "celegans_fcm"
DEFAULT_AMPLITUDES = {"PLML": 0.015, "PLMR": 0.015, "AVBL": 0.1, "AVBR": 0.1}
"""Peak currents, nA: the largest (of a sweep 10-500 pA) for which a sustained step keeps the stimulated soma
at or below the calcium reversal potential of c302 (+40 mV) after warm-up (D1: PLM 15 pA -> +39.9 mV, AVB 100
pA -> +36.5 mV; 20 pA / 250 pA already reach +46 / +83 mV). See docs/celegans_data.md."""
VOLTAGE_CAP_MV = 40.0
"""Plausible upper bound of a stimulated soma (c302's E_Ca); exceeding it is reported as a warning."""


@dataclasses.dataclass(frozen=True)
class FCMConfig:
    """Configuration of an FCM dataset.

    Attributes:
        samples: number of stimuli.
        sample_dt: recording step, ms (a whole multiple of ``dt``).
        dt: integration step, ms (<= 0.1: c302 diverges at 0.5 ms).
        reference_dt: fine step for the integration-error check, ms (a divisor of ``sample_dt``).
        duration: stimulus window, ms.
        warmup: zero-input time before the window, ms (removes the settling transient).
        seed: stimulus design seed.
        parameter_set: c302 parameter set (D1, D, C1).
        cells: neuron subset (None: all 302).
        inputs: stimulated neurons.
        outputs: recorded neurons.
        amplitudes: peak current per input, nA.
        ablate: neurons whose synapses and gap junctions are removed.
    """

    samples: int = 40
    sample_dt: float = 0.5
    dt: float = 0.1
    reference_dt: float = 0.025
    duration: float = 500.0
    warmup: float = 500.0
    seed: int = 0
    parameter_set: str = "D1"
    cells: tuple[str, ...] | None = None
    inputs: tuple[str, ...] = FCM_INPUTS
    outputs: tuple[str, ...] = FCM_OUTPUTS
    amplitudes: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_AMPLITUDES))
    ablate: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("sample_dt", "dt", "reference_dt", "duration"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"invalid {name}: got {v!r}; pass a positive number of ms")
        if not (isinstance(self.warmup, (int, float)) and math.isfinite(self.warmup) and self.warmup >= 0):
            raise ValueError(f"invalid warmup: got {self.warmup!r}; pass a non-negative number of ms")
        if self.dt > 0.1 + 1e-12:
            raise ValueError(
                f"invalid dt: got {self.dt} ms; c302 diverges at 0.5 ms and is 66 mV off at 0.2 ms, "
                "use dt <= 0.1 ms (--dt 0.1)"
            )
        for a, b, what in (
            (self.sample_dt, self.dt, "sample_dt / dt"),
            (self.sample_dt, self.reference_dt, "sample_dt / reference_dt"),
            (self.duration, self.sample_dt, "duration / sample_dt"),
            (self.warmup or self.dt, self.dt, "warmup / dt"),
        ):
            r = a / b
            if abs(r - round(r)) > 1e-6 or round(r) < 1:
                raise ValueError(f"{what} = {a} / {b} is not a whole number; choose steps that divide evenly")
        for name in ("inputs", "outputs", "ablate"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.cells is not None:
            object.__setattr__(self, "cells", tuple(self.cells))
        object.__setattr__(self, "amplitudes", {k: float(v) for k, v in dict(self.amplitudes).items()})

    @property
    def c302(self) -> C302Config:
        return C302Config(self.parameter_set, self.cells)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["amplitudes"] = dict(self.amplitudes)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def validate_currents(
    currents: np.ndarray, inputs: Sequence[str], duration: float, dt: float, what: str
) -> None:
    """Check a current array for the worker: shape (duration / dt + 1, len(inputs)), finite.

    Raises:
        ValueError: naming the stimulus, the problem and the fix.
    """
    n = round(duration / dt) + 1
    a = np.asarray(currents)
    if a.shape != (n, len(inputs)):
        raise ValueError(
            f"{what}: waveform has shape {a.shape}, expected ({n}, {len(inputs)}) = "
            f"(duration {duration} ms / dt {dt} ms + 1, one column per input {list(inputs)})"
        )
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{what}: waveform contains NaN/inf (first at step {bad[0]}, input {inputs[bad[1]]!r}); "
            "pass finite currents in nA"
        )


def validate_names(names: Sequence[str], build: Build, what: str) -> None:
    """Raise ValueError if a neuron name is not in the built network."""
    unknown = [n for n in names if n not in build.cells]
    if unknown:
        raise ValueError(
            f"unknown neuron name(s) in {what}: {unknown}; the network "
            f"({build.config.net_id}) has {len(build.cells)} cells, e.g. {list(build.cells[:8])}"
        )


def make_task(
    key: str,
    build: Build,
    cfg: FCMConfig,
    currents: np.ndarray,
    dt: float,
    ablate: Sequence[str] | None = None,
) -> SimTask:
    """A validated :class:`SimTask` for ``currents`` (nA, on the ``dt`` grid)."""
    validate_currents(currents, cfg.inputs, cfg.duration, dt, key)
    return SimTask(
        key=key,
        build_dir=str(build.path),
        module=build.module,
        inputs=cfg.inputs,
        outputs=cfg.outputs,
        currents=np.asarray(currents, dtype=float),
        dt=dt,
        sample_dt=cfg.sample_dt,
        warmup=cfg.warmup,
        ablate=tuple(cfg.ablate if ablate is None else ablate),
    )


def _save_result(folder: Path, res: SimResult) -> None:
    import io

    buf = io.BytesIO()
    np.savez(
        buf, outputs=res.outputs, input_voltages=res.input_voltages, wall_s=res.wall_s, setup_s=res.setup_s
    )
    atomic_write_bytes(folder / f"{res.key}.npz", buf.getvalue())


def _load_result(path: Path) -> SimResult:
    with np.load(path) as z:
        return SimResult(
            path.stem, z["outputs"], z["input_voltages"], float(z["wall_s"]), float(z["setup_s"])
        )


def generate_fcm_dataset(
    cfg: FCMConfig,
    out: str | Path,
    *,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda m: None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[xr.Dataset, dict]:
    """Generate (or resume) the FCM dataset and write it to ``out`` (Zarr).

    Args:
        cfg: the dataset configuration.
        out: target store path (``.zarr``); ``<out>.partial/`` holds finished simulations until the end.
        executor: where simulations run (default: one local worker process).
        cache_dir: c302 build cache root.
        overwrite: replace an existing store at ``out``.
        log: progress messages.
        progress: ``progress(done, total)`` after every finished simulation.

    Returns:
        The dataset and a summary dict (timings and quality numbers; also stored in the attributes).

    Raises:
        FileExistsError: ``out`` exists and not ``overwrite``.
        ValueError: bad configuration (names, shapes, NaN) -- before anything is simulated.
        RuntimeError: simulations failed after a retry (finished ones stay in the partial folder).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite or choose another --out")
    require_neuron()
    t_start = time.perf_counter()
    build = build_network(cfg.c302, cache_dir=cache_dir, log=log)
    validate_names(cfg.inputs, build, "inputs")
    validate_names(cfg.outputs, build, "outputs")
    validate_names(cfg.ablate, build, "ablate")
    stimuli = design_stimuli(
        cfg.samples, seed=cfg.seed, duration=cfg.duration, amplitudes=cfg.amplitudes, inputs=cfg.inputs
    )
    currents = [s.render(cfg.inputs, cfg.duration, cfg.dt) for s in stimuli]
    # the reference (integration-error) stimulus: the one with the largest total variation of its currents
    scale = np.array([cfg.amplitudes[n] for n in cfg.inputs])
    tv = [float((np.abs(np.diff(c, axis=0)).sum(axis=0) / scale).sum()) for c in currents]
    ref = int(np.argmax(tv))
    tasks = [make_task("zero", build, cfg, np.zeros_like(currents[0]), cfg.dt)]
    tasks += [make_task(f"sample_{i:04d}", build, cfg, c, cfg.dt) for i, c in enumerate(currents)]
    tasks.append(
        make_task(
            "reference",
            build,
            cfg,
            stimuli[ref].render(cfg.inputs, cfg.duration, cfg.reference_dt),
            cfg.reference_dt,
        )
    )

    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    meta = {"config": cfg.to_dict(), "build": build.path.name}
    meta_path = partial / "config.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old != json.loads(json.dumps(meta)):
            raise ValueError(
                f"{partial} holds samples of a different configuration; remove it to start afresh "
                f"(or rerun the original command to resume)"
            )
    else:
        atomic_write_json(meta_path, meta)
    done = {p.stem for p in partial.glob("*.npz")}
    todo = [t for t in tasks if t.key not in done]
    if done:
        log(f"resuming: {len(done)} of {len(tasks)} simulations already in {partial}")
    progress(len(tasks) - len(todo), len(tasks))
    count = [len(tasks) - len(todo)]

    def on_result(i, res):
        _save_result(partial, res)
        count[0] += 1
        progress(count[0], len(tasks))

    def on_failure(i, exc, final):
        log(f"simulation {todo[i].key} failed{' (giving up)' if final else ' (retrying once)'}: {exc}")

    own = executor is None
    executor = executor or ProcessExecutor(1)
    t_sim = time.perf_counter()
    try:
        report = run_tasks(executor, run_task, todo, retries=1, on_result=on_result, on_failure=on_failure)
    finally:
        if own:
            executor.close()
    sim_wall = time.perf_counter() - t_sim
    if report.failed:
        lines = "; ".join(f"{todo[i].key}: {msg}" for i, msg in report.failed.items())
        raise RuntimeError(
            f"{len(report.failed)} simulation(s) failed after a retry ({lines}); the "
            f"{len(tasks) - len(report.failed)} finished ones are kept in {partial}; rerun to resume"
        )
    results = {t.key: _load_result(partial / f"{t.key}.npz") for t in tasks}
    ds, summary = assemble(cfg, build, stimuli, results, ref)
    summary["generation_wall_s"] = time.perf_counter() - t_start
    summary["simulation_wall_s_this_run"] = sim_wall
    summary["simulations_this_run"] = len(todo)
    ds.attrs["summary"] = summary
    save_dataset(ds, out, kind=KIND, overwrite=overwrite)
    shutil.rmtree(partial, ignore_errors=True)
    return ds, summary


def assemble(
    cfg: FCMConfig, build: Build, stimuli: list[Stimulus], results: Mapping[str, SimResult], ref: int
) -> tuple[xr.Dataset, dict]:
    """Build the dataset and the quality numbers from finished simulations."""
    n = len(stimuli)
    stride = round(cfg.sample_dt / cfg.dt)
    time_ms = np.arange(round(cfg.duration / cfg.sample_dt) + 1) * cfg.sample_dt
    inputs = np.stack([s.render(cfg.inputs, cfg.duration, cfg.dt)[::stride] for s in stimuli])
    outputs = np.stack([results[f"sample_{i:04d}"].outputs for i in range(n)])
    vin = np.stack([results[f"sample_{i:04d}"].input_voltages for i in range(n)])
    zero = results["zero"].outputs
    driven = outputs - zero[None]
    ref_err = results["reference"].outputs - outputs[ref]
    integ_max = np.abs(ref_err).max(axis=0)
    integ_rms = np.sqrt((ref_err**2).mean(axis=0))
    signal_sd = driven.std(axis=(0, 1))
    drift = np.abs(zero - zero[0]).max(axis=0)
    families = [s.family for s in stimuli]
    split = choose_split(families, difficulty(driven, cfg.sample_dt))
    walls = [results[f"sample_{i:04d}"].wall_s for i in range(n)]
    per = lambda a: dict(zip(cfg.outputs, np.asarray(a).tolist(), strict=True))
    summary = {
        "zero_input_drift_mV": dict(zip(cfg.outputs, drift.tolist(), strict=True)),
        "signal_sd_mV": dict(zip(cfg.outputs, signal_sd.tolist(), strict=True)),
        "integration_error_max_mV": dict(zip(cfg.outputs, integ_max.tolist(), strict=True)),
        "integration_error_rms_mV": dict(zip(cfg.outputs, integ_rms.tolist(), strict=True)),
        "signal_to_max_error": per(signal_sd / np.maximum(integ_max, 1e-12)),
        "signal_to_rms_error": per(signal_sd / np.maximum(integ_rms, 1e-12)),
        "stimulated_voltage_range_mV": {
            name: [float(vin[:, :, j].min()), float(vin[:, :, j].max())] for j, name in enumerate(cfg.inputs)
        },
        "voltage_cap_mV": VOLTAGE_CAP_MV,
        "stimulated_above_cap": {
            name: bool(vin[:, :, j].max() > VOLTAGE_CAP_MV) for j, name in enumerate(cfg.inputs)
        },
        "reference_sample": ref,
        "seconds_per_simulation_mean": float(np.mean(walls)),
        "simulated_ms_per_sample": cfg.duration,
    }
    ds = xr.Dataset(
        {
            "inputs": (
                ("sample", "time", "input"),
                inputs,
                {"units": "nA", "long_name": "IClamp current at the soma"},
            ),
            "outputs": (("sample", "time", "output"), outputs, {"units": "mV", "long_name": "soma voltage"}),
            "input_voltages": (("sample", "time", "input"), vin, {"units": "mV"}),
            "zero_input_outputs": (("time", "output"), zero, {"units": "mV"}),
            "split": (("sample",), np.array(split, dtype="U10")),
            "family": (("sample",), np.array(families, dtype="U12")),
        },
        coords={
            "sample": np.arange(n),
            "time": ("time", time_ms, {"units": "ms"}),
            "input": list(cfg.inputs),
            "output": list(cfg.outputs),
        },
        attrs={
            "description": "C. elegans forward crawling: c302 in NEURON, stimulus window after warm-up",
            "config": cfg.to_dict(),
            "versions": versions(),
            "parameter_set": cfg.parameter_set,
            "integration_dt_ms": cfg.dt,
            "sample_dt_ms": cfg.sample_dt,
            "warmup_ms": cfg.warmup,
            "amplitudes_nA": dict(cfg.amplitudes),
            "stimuli": [s.to_dict() for s in stimuli],
            "currents_rectified_at_zero": True,
            "split_method": "per family by difficulty, dealt test/validation/train/train, balanced 50/25/25",
            "c302_build": build.path.name,
            "network_cells": len(build.cells),
        },
    )
    return ds, summary
