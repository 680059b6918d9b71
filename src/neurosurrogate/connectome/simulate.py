"""Drive a compiled c302 network from Python: input currents into named neurons, voltages from named neurons.

Example::

    from neurosurrogate.connectome import C302Config, build_network, simulate_c302
    build = build_network(C302Config("D1"))
    t = np.arange(5001) * 0.1                                # 500 ms window on the dt = 0.1 ms grid
    run = simulate_c302(build, {"AVBL": 0.1 * (t > 100)}, ["DB1", "VB1"], duration=500.0, sample_dt=0.5)
    run.outputs.shape                                        # (1, 1001, 2), mV

Workers are started with ``spawn``: in a script, call this under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..parallel import Executor, ProcessExecutor, run_tasks
from .build import Build, require_neuron
from .worker import SimTask, run_task


class C302Run(NamedTuple):
    """Result of :func:`simulate_c302`.

    Attributes:
        time: shape (n_time,), ms from the start of the stimulus window.
        outputs: shape (n_stimuli, n_time, n_outputs), soma voltages, mV.
        input_voltages: shape (n_stimuli, n_time, n_inputs), soma voltages of the stimulated cells, mV.
        inputs: the stimulated neurons (columns of ``input_voltages``).
        wall_s: seconds per simulation (stimulus window only).
    """

    time: np.ndarray
    outputs: np.ndarray
    input_voltages: np.ndarray
    inputs: tuple[str, ...]
    wall_s: np.ndarray


def simulate_c302(
    build: Build,
    stimuli: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    outputs: Sequence[str],
    *,
    duration: float,
    dt: float = 0.1,
    sample_dt: float = 0.5,
    warmup: float = 500.0,
    ablate: Sequence[str] = (),
    executor: Executor | None = None,
) -> C302Run:
    """Simulate one or several stimuli on ``build`` in NEURON worker processes.

    Args:
        build: a compiled network (:func:`~neurosurrogate.connectome.build.build_network`).
        stimuli: neuron name -> current waveform, nA, shape (duration / dt + 1,) on the grid
            ``t = 0, dt, ..., duration`` (value k is applied during [t_k, t_k + dt)); or a sequence of such
            mappings. Neurons missing from a mapping get zero current.
        outputs: neurons whose soma voltage is recorded.
        duration: stimulus window, ms.
        dt: integration step, ms (<= 0.1; c302 diverges at 0.5 ms).
        sample_dt: recording step, ms (a whole multiple of ``dt``).
        warmup: zero-input time before the window, ms.
        ablate: neurons whose synapses and gap junctions are removed.
        executor: where to run (default: one local worker process, closed afterwards).

    Returns:
        A :class:`C302Run`.

    Raises:
        ValueError: unknown neuron name, waveform of the wrong length, NaN, bad steps.
        RuntimeError: a simulation failed twice.
    """
    require_neuron()
    batch = [stimuli] if isinstance(stimuli, Mapping) else list(stimuli)
    if not batch:
        raise ValueError("stimuli is empty; pass {neuron: waveform} or a list of them")
    for name, v in (("dt", dt), ("sample_dt", sample_dt), ("duration", duration)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"invalid {name}: got {v!r}; pass a positive number of ms")
    if dt > 0.1 + 1e-12:
        raise ValueError(f"invalid dt: got {dt} ms; c302 diverges at 0.5 ms, use dt <= 0.1 ms")
    for a, b, what in ((sample_dt, dt, "sample_dt / dt"), (duration, sample_dt, "duration / sample_dt")):
        if abs(a / b - round(a / b)) > 1e-6:
            raise ValueError(f"{what} = {a} / {b} is not a whole number; choose steps that divide evenly")
    inputs = tuple(dict.fromkeys(name for stim in batch for name in stim))
    outputs = tuple(outputs)
    cells = set(build.cells)
    for what, names in (("stimuli", inputs), ("outputs", outputs), ("ablate", tuple(ablate))):
        unknown = [n for n in names if n not in cells]
        if unknown:
            raise ValueError(
                f"unknown neuron name(s) in {what}: {unknown}; the network ({build.config.net_id}) "
                f"has {len(cells)} cells, e.g. {sorted(cells)[:8]}"
            )
    if not outputs:
        raise ValueError("outputs is empty; name at least one neuron to record")
    n = round(duration / dt) + 1
    tasks = []
    for k, stim in enumerate(batch):
        cur = np.zeros((n, len(inputs)))
        for j, name in enumerate(inputs):
            if name not in stim:
                continue
            w = np.asarray(stim[name], dtype=float)
            if w.shape != (n,):
                raise ValueError(
                    f"stimulus {k}, neuron {name!r}: waveform has shape {w.shape}, expected ({n},) "
                    f"= duration {duration} ms / dt {dt} ms + 1"
                )
            if not np.isfinite(w).all():
                raise ValueError(
                    f"stimulus {k}, neuron {name!r}: waveform contains NaN/inf at step "
                    f"{int(np.argmax(~np.isfinite(w)))}; pass finite currents in nA"
                )
            cur[:, j] = w
        tasks.append(
            SimTask(
                f"stim_{k:05d}",
                str(build.path),
                build.module,
                inputs,
                outputs,
                cur,
                float(dt),
                float(sample_dt),
                float(warmup),
                tuple(ablate),
            )
        )
    results: dict[int, object] = {}
    own = executor is None
    executor = executor or ProcessExecutor(1)
    try:
        rep = run_tasks(executor, run_task, tasks, on_result=lambda i, r: results.__setitem__(i, r))
    finally:
        if own:
            executor.close()
    if rep.failed:
        raise RuntimeError(f"{len(rep.failed)} simulation(s) failed after a retry: {rep.failed}")
    res = [results[i] for i in range(len(tasks))]
    return C302Run(
        time=np.arange(round(duration / sample_dt) + 1) * sample_dt,
        outputs=np.stack([r.outputs for r in res]),
        input_voltages=np.stack([r.input_voltages for r in res]),
        inputs=inputs,
        wall_s=np.array([r.wall_s for r in res]),
    )
