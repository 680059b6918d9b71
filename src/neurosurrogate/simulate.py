"""Fixed-step simulation of neurons and circuits under `jax.lax.scan` (thesis algorithms 3.3-3.4).

`simulate` runs one model on one input; `simulate_population` runs a stacked population of parameter sets on a batch
of inputs in one vmapped, jit-compiled call. Both are differentiable end to end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._config import default_float
from ._errors import bad_value
from .models._neuron import AbstractNeuron
from .models.circuit import Circuit
from .models.solvers import AbstractSolver, SemiImplicit

Model = AbstractNeuron | Circuit


class Trajectory(eqx.Module):
    """Recorded traces of one simulation (leading batch axes for populations/stimuli).

    Attributes:
        V: membrane potentials, shape (..., time, channel), mV.
        Ca: calcium concentrations (same shape) or None for models without calcium.
        current: input currents at the recorded times, shape (..., time, input), uA/cm2.
        dt: integration step, ms.
        stride: steps between two recorded samples (sample interval = dt * stride).
        channels: names of the recorded neurons.
        inputs: names of the neurons receiving the input columns.
    """

    V: Float[Array, "... time channel"]
    Ca: Float[Array, "... time channel"] | None
    current: Float[Array, "... time input"]
    dt: float = eqx.field(static=True)
    stride: int = eqx.field(static=True)
    channels: tuple[str, ...] = eqx.field(static=True)
    inputs: tuple[str, ...] = eqx.field(static=True)

    @property
    def sample_dt(self) -> float:
        """Interval between recorded samples, ms."""
        return self.dt * self.stride

    @property
    def time(self) -> np.ndarray:
        """Sample times, ms (the first sample is the initial state at t = 0)."""
        return np.arange(self.V.shape[-2]) * self.sample_dt

    def channel(self, name: str) -> Array:
        """Voltage trace(s) of one recorded neuron, shape (..., time)."""
        if name not in self.channels:
            raise ValueError(f"{name!r} was not recorded; recorded channels: {list(self.channels)}")
        return self.V[..., self.channels.index(name)]

    def __getitem__(self, index) -> Trajectory:
        """Select along the leading batch axes (population member, stimulus)."""
        def take(x):
            return None if x is None else x[index]

        cur = self.current if self.current.ndim == 2 or self.current.ndim < self.V.ndim else take(self.current)
        return Trajectory(take(self.V), take(self.Ca), cur, self.dt, self.stride, self.channels, self.inputs)

    def finite(self) -> Array:
        """Per batch element: True when every recorded value is finite (detects numerical blow-ups)."""
        ok = jnp.isfinite(self.V).all(axis=(-1, -2))
        if self.Ca is not None:
            ok = ok & jnp.isfinite(self.Ca).all(axis=(-1, -2))
        return ok


def model_names(model: Model) -> tuple[str, ...]:
    """Neuron names of a circuit, or ``n0, n1, ...`` for a bare neuron module."""
    if isinstance(model, Circuit):
        return model.names
    return tuple(f"n{i}" for i in range(model.n))


def _resolve(model: Model, names: Sequence[str | int] | None, default: Sequence[str], what: str) -> tuple[int, ...]:
    all_names = model_names(model)
    if names is None:
        names = default
    out = []
    for x in names:
        if isinstance(x, (int, np.integer)):
            if not 0 <= int(x) < len(all_names):
                raise bad_value(what, x, f"indices must be in [0, {len(all_names)})")
            out.append(int(x))
        elif x in all_names:
            out.append(all_names.index(x))
        else:
            raise bad_value(what, x, f"unknown neuron; choose among {list(all_names)}")
    return tuple(out)


def _default_inputs(model: Model, k: int) -> tuple[str, ...]:
    names = model_names(model)
    if k == len(names):
        return names
    if isinstance(model, Circuit) and k == len(model.sensors):
        return model.sensors
    sensors = f" or {len(model.sensors)} (sensors {list(model.sensors)})" if isinstance(model, Circuit) else ""
    raise ValueError(
        f"the stimulus has {k} input column(s) but the model has {len(names)} neurons{sensors}; "
        f"pass `inputs=[...]` naming the neuron that receives each column"
    )


def _io_indices(model: Model, k: int, inputs, record) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """State indices of the neurons receiving the ``k`` input columns and of the recorded neurons."""
    input_index = _resolve(model, inputs, _default_inputs(model, k) if inputs is None else (), "inputs")
    if len(input_index) != k:
        raise bad_value("inputs", inputs, f"name one neuron per input column ({k} columns)")
    return input_index, _resolve(model, record, model_names(model), "record")


def _check_dt(dt) -> None:
    if isinstance(dt, jax.core.Tracer):
        return
    value = float(np.asarray(dt))
    if not (math.isfinite(value) and value > 0):
        raise bad_value("dt", dt, "the time step must be a positive number of milliseconds")


def _check_current(current) -> Array:
    current = jnp.asarray(current, dtype=default_float())
    if current.ndim == 1:
        current = current[:, None]
    if current.ndim != 2:
        raise bad_value("stimulus shape", current.shape, "expected (time,) or (time, inputs)")
    if current.shape[0] < 1:
        raise bad_value("stimulus length", current.shape[0], "the stimulus needs at least one time step")
    if not isinstance(current, jax.core.Tracer) and not bool(jnp.isfinite(current).all()):
        bad = np.argwhere(~np.isfinite(np.asarray(current)))[0]
        raise bad_value("stimulus", f"NaN/inf at time step {bad[0]}, input {bad[1]}",
                        "remove non-finite values from the input current")
    return current


def _run(model: Model, current, dt, init_state, input_index, record_index, stride, solver):
    """Scan the model's step over the input; record V (and Ca) every ``stride`` steps, starting at t = 0."""
    n = model.n
    proj = np.zeros((len(input_index), n))
    proj[np.arange(len(input_index)), np.asarray(input_index)] = 1.0
    proj = jnp.asarray(proj, current.dtype)
    state0 = model.init_state() if init_state is None else init_state
    rec_idx = np.asarray(record_index)
    has_ca = hasattr(state0, "Ca")

    def record(state):
        return state.V[rec_idx], (state.Ca[rec_idx] if has_ca else None)

    # Rematerialise each step in the backward pass: reverse mode then stores only the state per step
    # instead of every intermediate (gates, sigmoids, synaptic terms), which halves value-and-grad time
    # on CPU (memory traffic dominates) and cuts its memory; the forward pass is unchanged.
    @jax.checkpoint
    def step(state, i_k):
        return model.step(state, i_k, dt, solver), None

    # map the input columns onto neurons once for the whole stimulus (an exact one-hot product), not per step
    neuron_current = current @ proj
    steps = current.shape[0]
    n_rec = -(-steps // stride)
    if stride == 1:
        def body(state, i_k):
            rec = record(state)
            return step(state, i_k)[0], rec

        final, (v, ca) = jax.lax.scan(body, state0, neuron_current)
    else:
        pad = n_rec * stride - steps
        padded = jnp.concatenate([neuron_current, jnp.zeros((pad, n), current.dtype)])
        chunks = padded.reshape(n_rec, stride, n)

        def outer(state, chunk):
            rec = record(state)
            return jax.lax.scan(step, state, chunk)[0], rec

        final, (v, ca) = jax.lax.scan(outer, state0, chunks)
    return v, ca, current[::stride], final


@eqx.filter_jit
def _run_jit(model, current, dt, init_state, input_index, record_index, stride, solver):
    return _run(model, current, dt, init_state, input_index, record_index, stride, solver)


def simulate(
    model: Model,
    current,
    *,
    dt: float,
    inputs: Sequence[str | int] | None = None,
    record: Sequence[str | int] | None = None,
    stride: int = 1,
    solver: AbstractSolver = SemiImplicit(),
    init_state=None,
    return_final_state: bool = False,
):
    """Simulate a neuron module or a circuit under an input current.

    Args:
        model: a neuron module (n neurons, uncoupled) or a :class:`Circuit`.
        current: input current, shape (time,) or (time, inputs), uA/cm2; step k applies ``current[k]``. A 3-D
            array (stimuli, time, inputs) simulates a batch of stimuli in one vmapped call (leading axis in V).
        dt: integration step, ms (> 0).
        inputs: neuron names (or indices) receiving each input column; default: every neuron when the column count
            equals the neuron count, else the circuit's sensors.
        record: neurons to record (default: all).
        stride: record every ``stride`` steps.
        solver: :class:`SemiImplicit` (thesis eq. 3.22-3.24, default), ``ExponentialEuler`` or ``ExplicitEuler``.
        init_state: initial state (default: the model's resting state).
        return_final_state: also return the state after the last step.

    Returns:
        A :class:`Trajectory` with ``ceil(time / stride)`` samples (sample 0 is the initial state), and the final
        state if requested.

    Example:
        >>> from neurosurrogate import CElegansHH, simulate
        >>> traj = simulate(CElegansHH.default(), jnp.full(1200, 10.0), dt=1.0)
        >>> traj.V.shape
        (1200, 1)
    """
    _check_dt(dt)
    if int(stride) < 1:
        raise bad_value("stride", stride, "record every stride >= 1 steps")
    if np.ndim(current) == 3:  # a batch of stimuli: one vmapped call
        if init_state is not None or return_final_state:
            raise ValueError("init_state/return_final_state are not supported with a batch of stimuli")
        return simulate_population(
            stack_models([model]), current, dt=dt, inputs=inputs, record=record, stride=stride, solver=solver
        )[0]
    current = _check_current(current)
    input_index, record_index = _io_indices(model, current.shape[1], inputs, record)
    dt_arr = jnp.asarray(dt, current.dtype)
    v, ca, cur, final = _run_jit(model, current, dt_arr, init_state, input_index, record_index, int(stride), solver)
    names = model_names(model)
    traj = Trajectory(
        V=v, Ca=ca, current=cur, dt=float(np.asarray(dt)) if not isinstance(dt, jax.core.Tracer) else 0.0,
        stride=int(stride), channels=tuple(names[i] for i in record_index),
        inputs=tuple(names[i] for i in input_index),
    )
    return (traj, final) if return_final_state else traj


def simulate_population(
    models: Model,
    currents,
    *,
    dt: float,
    inputs: Sequence[str | int] | None = None,
    record: Sequence[str | int] | None = None,
    stride: int = 1,
    solver: AbstractSolver = SemiImplicit(),
) -> Trajectory:
    """Simulate P parameter sets on S stimuli in one vmapped call.

    Args:
        models: a model whose parameter leaves carry a leading population axis P (see :func:`stack_models` or
            ``Model.random(key, n, population=P)``).
        currents: shape (S, time, inputs) (or (time, inputs) for one stimulus shared by all members), uA/cm2.
        dt, inputs, record, stride, solver: as in :func:`simulate`.

    Returns:
        A :class:`Trajectory` with V of shape (P, S, time, channel) (S omitted for a 2-D ``currents``).
    """
    _check_dt(dt)
    if int(stride) < 1:
        raise bad_value("stride", stride, "record every stride >= 1 steps")
    currents = jnp.asarray(currents, default_float())
    single = currents.ndim == 2
    if single:
        currents = currents[None]
    if currents.ndim != 3:
        raise bad_value("currents shape", currents.shape, "expected (stimuli, time, inputs) or (time, inputs)")
    _check_current(currents.reshape(-1, currents.shape[-1]))
    input_index, record_index = _io_indices(models, currents.shape[-1], inputs, record)
    dt_arr = jnp.asarray(dt, currents.dtype)
    v, ca, cur = _population_jit(models, currents, dt_arr, input_index, record_index, int(stride), solver)
    if single:
        v, cur = v[:, 0], cur[0]
        ca = None if ca is None else ca[:, 0]
    names = model_names(models)
    return Trajectory(
        V=v, Ca=ca, current=cur, dt=float(np.asarray(dt)), stride=int(stride),
        channels=tuple(names[i] for i in record_index), inputs=tuple(names[i] for i in input_index),
    )


@eqx.filter_jit
def _population_jit(models, currents, dt, input_index, record_index, stride, solver):
    def one(model, current):
        v, ca, cur, _ = _run(model, current, dt, None, input_index, record_index, stride, solver)
        return v, ca, cur

    over_stimuli = jax.vmap(one, in_axes=(None, 0))
    v, ca, cur = eqx.filter_vmap(over_stimuli, in_axes=(eqx.if_array(0), None))(models, currents)
    return v, ca, cur[0]


def stack_models(models: Sequence[eqx.Module]):
    """Stack models with identical structure into one population (leading axis on every array leaf)."""
    if not models:
        raise ValueError("stack_models needs at least one model")
    arrays = [eqx.filter(m, eqx.is_array) for m in models]
    static = eqx.filter(models[0], eqx.is_array, inverse=True)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, static)


def population_member(models: eqx.Module, i: int):
    """The i-th parameter set of a stacked population."""
    return jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, models)
