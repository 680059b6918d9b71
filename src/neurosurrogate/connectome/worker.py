"""The NEURON side: runs inside a worker process, loads one compiled c302 build and simulates many stimuli.

NEURON loads one compiled mechanism set and one network per process, so this module is imported only by worker
processes (``parallel`` executors); the main process stays NEURON-free. A worker keeps the loaded network in a
process-global :class:`_Session` and reuses it for every task with the same build.

Protocol per task (:func:`run_task`):
  1. ``h.finitialize()`` (cells start at the c302 initial potential), then a warm-up of ``warmup`` ms at zero
     input so the settling transient of the network is not in the data. The state at the end of the warm-up is
     saved (``SaveState`` plus every range variable and synaptic current, since jnml-generated mechanisms
     carry assigned variables from step to step that SaveState misses) per (dt, ablation) and restored
     before every stimulus (the first included). This reproduces one continuous warm-up + window run exactly
     (tested) while paying the warm-up once per worker.
  2. The stimulus window: before each integration step ``k`` the ``IClamp`` amplitude of every input neuron is
     set to ``currents[k]`` (nA, zero-order hold over the step), then ``h.fadvance()``. Voltages of the output
     (and input) somata are read after every ``stride = sample_dt / dt`` steps (by index, avoiding
     ``Vector.record``'s floating-point off-by-one), giving ``duration / sample_dt + 1`` samples including t =
     0.
  3. Ablation sets ``weight = 0`` on every chemical synapse (its NetCon for the event-based synapses of
     parameter set D) and gap junction whose pre- or postsynaptic cell is ablated (the cell stays,
     disconnected).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _quiet_stdout():
    """Silence stdout (NEURON's banner, the generated module's prints) in this worker; keep stderr except
    NEURON's "no DISPLAY" notice."""
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved, saved_err = os.dup(1), os.dup(2)
    err = tempfile.TemporaryFile(mode="w+")
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            os.dup2(null.fileno(), 1)
            os.dup2(err.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.dup2(saved_err, 2)
        os.close(saved)
        os.close(saved_err)
        err.seek(0)
        text = "".join(ln for ln in err if "DISPLAY" not in ln and "No graphics" not in ln)
        err.close()
        if text.strip():
            sys.stderr.write(text)


_SYN = re.compile(r'h\("objectvar (syn_NC_([A-Za-z0-9]+)_([A-Za-z0-9]+)_\w+)\[(\d+)\]"\)')


@dataclasses.dataclass(frozen=True)
class SimTask:
    """One simulation (picklable; sent to worker processes).

    Attributes:
        key: identifies the result (e.g. ``"sample_0007"``).
        build_dir: the compiled c302 build folder.
        module: the generated NEURON module file name in ``build_dir``.
        inputs: neurons that receive an ``IClamp`` at the soma.
        outputs: neurons whose soma voltage is recorded.
        currents: shape (duration / dt + 1, len(inputs)), nA; row k is applied during step [t_k, t_k + dt).
        dt: integration step, ms.
        sample_dt: recording step, ms (a whole multiple of dt).
        warmup: zero-input time before the window, ms.
        ablate: neurons whose synapses and gap junctions are removed.
    """

    key: str
    build_dir: str
    module: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    currents: np.ndarray
    dt: float
    sample_dt: float
    warmup: float
    ablate: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SimResult:
    """Result of a :class:`SimTask`.

    Attributes:
        key: the task's key.
        outputs: soma voltages of the outputs, shape (duration / sample_dt + 1, n_outputs), mV.
        input_voltages: soma voltages of the stimulated cells, same shape with n_inputs, mV.
        wall_s: seconds spent in the stimulus window (excludes loading and warm-up).
        setup_s: seconds spent loading the network and warming up in this task (0 when reused).
    """

    key: str
    outputs: np.ndarray
    input_voltages: np.ndarray
    wall_s: float
    setup_s: float


_DIVERGED_MV = 1000.0


class SimulationDiverged(RuntimeError):
    """NEURON produced NaN/inf voltages (e.g. a too large dt or current)."""


class _Session:
    def __init__(self, build_dir: str, module: str):
        self.build_dir = build_dir
        os.chdir(build_dir)  # the generated module loads hoc files relative to the working directory
        with _quiet_stdout():
            import neuron  # noqa: F401  (loads x86_64/ mechanisms from the working directory)
            from neuron import h

            spec = importlib.util.spec_from_file_location("_c302_network", Path(build_dir) / module)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self.sim = mod.NeuronSimulation(tstop=1.0, dt=0.1)
        self.h = h
        for vec in list(h.List("Vector")):  # the generated code records every cell: stop it (cost per step)
            vec.play_remove()
        source = (Path(build_dir) / module).read_text()
        # (pre, post, object, original weight): graded synapses and gap junctions carry a RANGE ``weight``
        # (D1, C1); event-based synapses (D) are weighted by the NetCon that drives them
        self.syn: list[tuple[str, str, object, float]] = []
        by_name: dict[str, tuple[str, str]] = {}
        for name, pre, post, count in _SYN.findall(source):
            arr = getattr(h, name)
            for i in range(int(count)):
                pp = arr[i]
                by_name[pp.hname()] = (pre, post)
                if hasattr(pp, "weight"):
                    self.syn.append((pre, post, pp, pp.weight))
        self.lagged = [pp for _, _, pp, _ in self.syn if hasattr(pp, "i")]
        self.range_refs = []
        for sec in h.allsec():
            for seg in sec:
                for mech in seg:
                    for rv in mech:
                        try:
                            self.range_refs.append(getattr(seg, f"_ref_{rv.name()}"))
                        except (AttributeError, TypeError, LookupError):  # array or inaccessible variables
                            pass
        for nc in h.List("NetCon"):
            target = nc.syn()
            if target is not None and target.hname() in by_name:
                self.syn.append((*by_name[target.hname()], nc, nc.weight[0]))
        self.cells = set(re.findall(r'print\("Population (\w+) contains', source))
        self.clamps: dict[str, object] = {}
        self.states: dict[tuple, object] = {}
        self.ablated: tuple[str, ...] = ()

    def soma(self, name: str):
        if name not in self.cells:
            raise ValueError(f"unknown neuron {name!r}; the network has {sorted(self.cells)}")
        cell = getattr(self.h, f"a_{name}")[0]
        sec = getattr(cell, "Soma", None) or cell.soma  # multi-compartment (D, D1) vs single-compartment (C1)
        return sec(0.5)

    def clamp(self, name: str):
        if name not in self.clamps:
            c = self.h.IClamp(self.soma(name))
            c.delay, c.dur, c.amp = 0.0, 1e9, 0.0
            self.clamps[name] = c
            self.states.clear()  # a new point process invalidates saved states
        return self.clamps[name]

    def set_ablation(self, ablate: tuple[str, ...]) -> None:
        ablate = tuple(sorted(set(ablate)))
        for name in ablate:
            self.soma(name)  # validates the name
        if ablate != self.ablated:
            gone = set(ablate)
            for pre, post, obj, weight in self.syn:
                w = 0.0 if (pre in gone or post in gone) else weight
                if obj.hname().startswith("NetCon"):
                    obj.weight[0] = w
                else:
                    obj.weight = w
            self.ablated = ablate

    def run(self, task: SimTask) -> SimResult:
        h = self.h
        t_setup = time.perf_counter()
        clamps = [self.clamp(n) for n in task.inputs]
        outs = [self.soma(n)._ref_v for n in task.outputs]
        ins = [self.soma(n)._ref_v for n in task.inputs]
        self.set_ablation(task.ablate)
        stride = round(task.sample_dt / task.dt)
        n_steps = task.currents.shape[0] - 1
        n_warm = round(task.warmup / task.dt)
        for c in self.clamps.values():
            c.amp = 0.0
        h.dt = task.dt
        h.steps_per_ms = 1.0 / task.dt
        h.tstop = 1e9
        h.finitialize()
        skey = (task.dt, self.ablated, n_warm)
        if skey not in self.states:
            for _ in range(n_warm):
                h.fadvance()
            state = h.SaveState()
            state.save()
            # jnml-generated mechanisms compute currents (graded synapses' ``i``) and gating factors
            # (``*_fcond``) inside the DERIVATIVE block, so these assigned variables carry from one step to
            # the next, and SaveState (STATEs only) misses them: keep every range variable and synaptic
            # current ourselves
            self.states[skey] = (state, [r[0] for r in self.range_refs], [pp.i for pp in self.lagged])
        state, ranges, currents = self.states[skey]
        state.restore()  # every stimulus (the first included) starts from the same restored state
        for ref, value in zip(self.range_refs, ranges, strict=True):
            ref[0] = value
        for pp, value in zip(self.lagged, currents, strict=True):
            pp.i = value
        setup_s = time.perf_counter() - t_setup
        t0 = time.perf_counter()
        n_rec = n_steps // stride + 1
        out = np.empty((n_rec, len(outs)))
        vin = np.empty((n_rec, len(ins)))
        out[0] = [r[0] for r in outs]
        vin[0] = [r[0] for r in ins]
        cur = np.asarray(task.currents, dtype=float)
        for k in range(n_steps):
            row = cur[k]
            for j, c in enumerate(clamps):
                c.amp = row[j]
            h.fadvance()
            if (k + 1) % stride == 0:
                i = (k + 1) // stride
                out[i] = [r[0] for r in outs]
                vin[i] = [r[0] for r in ins]
        for c in clamps:
            c.amp = 0.0
        wall = time.perf_counter() - t0
        both = np.concatenate([out, vin], axis=1)
        if not np.isfinite(both).all() or np.abs(both).max() > _DIVERGED_MV:
            raise SimulationDiverged(
                f"{task.key}: NEURON produced NaN/inf or |V| > {_DIVERGED_MV:g} mV at dt {task.dt} ms; "
                "use dt <= 0.1 ms and smaller input currents (defaults are calibrated for D1; C1 cells need "
                "far smaller currents)"
            )
        return SimResult(key=task.key, outputs=out, input_voltages=vin, wall_s=wall, setup_s=setup_s)


_SESSION: _Session | None = None


def run_task(task: SimTask) -> SimResult:
    """Simulate ``task`` in this process (loading the build on first use). Runs in worker processes only."""
    global _SESSION
    if _SESSION is None:
        t0 = time.perf_counter()
        _SESSION = _Session(task.build_dir, task.module)
        load_s = time.perf_counter() - t0
    else:
        load_s = 0.0
        if _SESSION.build_dir != task.build_dir:
            raise RuntimeError(
                f"this worker process already holds the build {_SESSION.build_dir}; NEURON cannot "
                f"load a second one ({task.build_dir}); use a fresh worker pool per build"
            )
    res = _SESSION.run(task)
    return dataclasses.replace(res, setup_s=res.setup_s + load_s)


def _selftest() -> None:  # pragma: no cover - `python -m neurosurrogate.connectome.worker BUILD` smoke test
    build = sys.argv[1]
    import json

    info = json.loads((Path(build) / "build.json").read_text())
    n = 1000
    cur = np.zeros((n + 1, 1))
    cur[200:600] = 0.05
    task = SimTask("x", build, info["module"], ("AVBL",), ("DB1", "VB1"), cur, 0.1, 0.5, 200.0)
    r = run_task(task)
    print(r.outputs[::40], r.wall_s, r.setup_s)


if __name__ == "__main__":  # pragma: no cover
    _selftest()
