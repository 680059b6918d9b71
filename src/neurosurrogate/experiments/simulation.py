"""Simulate a named model under named-neuron drives and return an xarray Dataset (the `simulate` arrow)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..data.trajectories import trajectory_to_dataset
from ..models.circuit import Circuit, circuit_names, load_circuit
from ..models.neurons import NEURON_MODELS, neuron_model
from ..simulate import Model, model_names, simulate
from ..stimuli import Drive, Pulses, Sine, SmoothedNoise, Step, n_steps


def available_models() -> list[str]:
    """Names accepted by :func:`resolve_model`: packaged circuits and single-neuron models."""
    return circuit_names() + sorted(NEURON_MODELS)


def resolve_model(name: str, *, neuron: str = "CHH", grouped: bool = False) -> Model:
    """A packaged circuit ("tap_withdrawal", "forward_locomotion") or one neuron ("LI", "SHH", "CHH") by name."""
    if name.upper() in NEURON_MODELS:
        return neuron_model(name).default(1)
    try:
        return load_circuit(name, neuron=neuron, grouped=grouped)
    except ValueError:
        raise ValueError(f"unknown model {name!r}; choose a circuit or a neuron model: {available_models()}") from None


def default_drives(model: Model) -> list[tuple[str, Drive]]:
    """A few labelled demonstration stimuli for a model (thesis-style box pulses for single neurons)."""
    if not isinstance(model, Circuit):
        target = model_names(model)[0]
        return [
            ("box pulses", Drive({target: Step(10.0, 200.0, 600.0) + Step(20.0, 800.0, 1000.0)})),
            ("ramp + sine", Drive({target: Sine(5.0, 4.0, offset=8.0, start=100.0)})),
            ("noise", Drive({target: SmoothedNoise(std=8.0, tau=30.0, mean=10.0, seed=1)})),
        ]
    if model.names == load_circuit("tap_withdrawal").names:
        return [
            ("tail touch (PLM, PVD)", Drive({"PLM": Step(20.0, 200.0, 700.0), "PVD": Step(10.0, 200.0, 700.0)})),
            ("head touch (ALM, AVM)", Drive({"ALM": Step(20.0, 300.0, 900.0), "AVM": Step(20.0, 300.0, 900.0)})),
            ("tail pulses + noise", Drive({"PLM": Pulses(25.0, 100.0, 80.0, 250.0, 4),
                                           "PVD": SmoothedNoise(std=6.0, tau=40.0, mean=5.0, seed=3)})),
        ]
    sensors = model.sensors or model.names[:1]
    return [
        ("step", Drive({s: Step(15.0, 200.0, 800.0) for s in sensors})),
        ("sine", Drive({s: Sine(10.0, 2.0, offset=10.0) for s in sensors})),
    ]


def drives_to_current(drives: Sequence[Drive], model: Model, duration: float, dt: float):
    """Render drives into one array (stimuli, steps, inputs) over the union of their target neurons."""
    names = model_names(model)
    targets: list[str] = []
    for d in drives:
        for t in d.targets:
            if t not in names:
                raise ValueError(f"stimulus targets unknown neuron {t!r}; the model has {list(names)}")
            if t not in targets:
                targets.append(t)
    steps = n_steps(duration, dt)
    current = np.zeros((len(drives), steps, len(targets)))
    for i, d in enumerate(drives):
        rendered = d.render(duration, dt)
        for j, t in enumerate(d.targets):
            current[i, :, targets.index(t)] = rendered[:, j]
    if not np.isfinite(current).all():
        raise ValueError("a stimulus produced NaN/inf values; check its parameters")
    return current, targets


def simulate_drives(
    model: Model,
    drives: Sequence[tuple[str, Drive]],
    *,
    duration: float,
    dt: float,
    stride: int = 1,
    record: Sequence[str] | None = None,
    model_config: dict | None = None,
) -> xr.Dataset:
    """Simulate ``model`` under each labelled drive; one Dataset with a ``sample`` per drive."""
    if not drives:
        raise ValueError("no stimulus given; pass at least one drive")
    current, targets = drives_to_current([d for _, d in drives], model, duration, dt)
    traj = simulate(model, current, dt=dt, inputs=targets, record=record, stride=stride)
    attrs = {
        "model": model_config or {},
        "stimuli": [{"label": label, "drive": d.to_dict()} for label, d in drives],
        "duration": duration,
        "generator": "neurosurrogate.simulate",
    }
    return trajectory_to_dataset(traj, attrs=attrs, sample_labels=[label for label, _ in drives])
