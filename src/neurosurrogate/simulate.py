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
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Float

from ._config import default_float
from ._errors import bad_value
from .models._neuron import AbstractNeuron
from .models.circuit import Circuit
from .models.solvers import AbstractSolver, SemiImplicit
from .models.synapses import ChemicalSynapses, GapJunctions

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
    """Scan the model's step over the input; record V (and Ca) every ``stride`` steps, starting at t = 0.

    Returns ``(V, Ca or None, current[::stride], final state)``. Models whose step is element-wise (LI, SHH, CHH and
    circuits of them, see :attr:`AbstractNeuron.elementwise`) go through :func:`_run_batch_minor`, which gives the
    same results but lays vmapped batches out neuron-major with the batch as the fast axis; others (e.g. the LSTM
    surrogate) through the generic scan :func:`_run_scan`.
    """
    if _batch_minor_ok(model, solver):
        v, ca, final = _run_batch_minor(model, current, dt, init_state, input_index, record_index, stride, solver)
        return v, ca, current[::stride], final
    return _run_scan(model, current, dt, init_state, input_index, record_index, stride, solver)


def _input_projection(n: int, input_index, dtype):
    proj = np.zeros((len(input_index), n))
    proj[np.arange(len(input_index)), np.asarray(input_index)] = 1.0
    return jnp.asarray(proj, dtype)


def _scan_steps(step, state0, neuron_current, record, stride: int, keep_states: bool = False):
    """``lax.scan`` of ``step(state, i_k)`` over the (time, ...) input, recording ``record(state)`` every ``stride``
    steps from t = 0; returns (final state, records stacked on a leading sample axis, and with ``keep_states`` the
    state before every step (the input padded with zeros to a multiple of the stride), else None)."""
    steps = neuron_current.shape[0]
    if stride == 1:
        def body(state, i_k):
            return step(state, i_k), (record(state), state if keep_states else None)

        final, (recs, states) = jax.lax.scan(body, state0, neuron_current)
        return final, recs, states
    n_rec = -(-steps // stride)
    pad = n_rec * stride - steps
    tail = neuron_current.shape[1:]
    padded = jnp.concatenate([neuron_current, jnp.zeros((pad, *tail), neuron_current.dtype)])
    chunks = padded.reshape(n_rec, stride, *tail)

    def inner(state, i_k):
        return step(state, i_k), (state if keep_states else None)

    def outer(state, chunk):
        state_out, states = jax.lax.scan(inner, state, chunk)
        return state_out, (record(state), states)

    final, (recs, states) = jax.lax.scan(outer, state0, chunks)
    if keep_states:
        states = jax.tree.map(lambda x: x.reshape(n_rec * stride, *x.shape[2:]), states)
    return final, recs, states


def _run_scan(model: Model, current, dt, init_state, input_index, record_index, stride, solver):
    """The generic path: the model's own ``step`` on (n,)-shaped states (vmap adds batch axes in front)."""
    proj = _input_projection(model.n, input_index, current.dtype)
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
        return model.step(state, i_k, dt, solver)

    # map the input columns onto neurons once for the whole stimulus (an exact one-hot product), not per step
    final, (v, ca), _ = _scan_steps(step, state0, current @ proj, record, int(stride))
    return v, ca, current[::stride], final


# ------------------------------------------------------------------------------------------------ batch-minor layout
# Under `vmap`, JAX batches the scan with the batch axes in front: states (..., batch, n), so the fast (SIMD) axis is
# the handful of neurons, parameters (batch, n) are re-broadcast against (batch, stimuli, n) states every step, and
# reverse mode reduces every parameter's cotangent over the stimuli every step. The batch-minor path instead runs
# the scan on (n, B) arrays, B = all vmapped axes flattened into one fast axis, with parameters broadcast to (k, B)
# once before the scan. `jax.custom_batching.custom_vmap` gives it control of the layout: a vmap of the level-`nb`
# function calls the level-`nb + 1` function with the new batch axis appended last (every input leaf then has `nb`
# trailing batch axes, of full size or 1). Reverse mode goes through `jax.custom_vjp` (a custom_vmap function cannot
# be transposed): its forward pass also returns the state before every step, its backward pass (custom-vmapped
# like the forward, so a vmapped gradient runs in the same layout) is a reverse scan of the per-step autodiff VJP,
# what `jax.checkpoint` on the step gives the generic path. Forward mode (`jax.jvp`, `jacfwd`) is therefore not
# available for these models.


def _batch_minor_ok(model, solver) -> bool:
    neurons = model.neurons if isinstance(model, Circuit) else model
    return (
        isinstance(neurons, AbstractNeuron)
        and type(neurons).elementwise
        and isinstance(solver, AbstractSolver)
        and (not isinstance(model, Circuit) or (type(model.synapses), type(model.gaps)) == (ChemicalSynapses,
                                                                                             GapJunctions))
    )


class _BatchMinorSpec(eqx.Module):
    """What the batch-minor scan needs besides the arrays (all static)."""

    model: Model  # the model with its inexact arrays removed (eqx.partition)
    solver: AbstractSolver
    dt: float | None  # a Python dt (the arrays then carry none)
    record_index: tuple[int, ...]
    stride: int


def _run_batch_minor(model, current, dt, init_state, input_index, record_index, stride, solver):
    """Same results as :func:`_run_scan` (V, Ca, final state), laid out batch-minor under vmap."""
    neuron_current = current @ _input_projection(model.n, input_index, current.dtype)
    arrays, static_model = eqx.partition(model, eqx.is_inexact_array)
    solver_arrays, static_solver = eqx.partition(solver, eqx.is_inexact_array)
    py_dt = isinstance(dt, (int, float)) and not isinstance(dt, bool)
    spec = _BatchMinorSpec(static_model, static_solver, float(dt) if py_dt else None, tuple(int(i) for i in
                           record_index), int(stride))
    inputs = (arrays, solver_arrays, neuron_current, None if py_dt else jnp.asarray(dt), init_state)
    return _batch_minor_fn(spec, 0)(inputs)


def _batch_shape(nb: int, inputs) -> tuple[int, ...]:
    """The broadcast shape of the ``nb`` trailing batch axes of every input leaf."""
    leaves = jax.tree.leaves(inputs)
    return tuple(np.broadcast_shapes(*(x.shape[x.ndim - nb:] for x in leaves))) if nb else ()


def _batch_minor_prepare(spec: _BatchMinorSpec, nb: int, inputs):
    """Inputs with ``nb`` trailing batch axes -> (arrays, solver arrays, current, dt, initial state) in the (k, B)
    layout: batch axes broadcast once and flattened into one fast axis, shared neuron sets expanded (on axis 0).
    The current keeps its own batch axes (time, n, b...), see :func:`_expand_input`: broadcasting a whole stimulus
    over, e.g., a population would copy it once per member."""
    batch = _batch_shape(nb, inputs)
    arrays, solver_arrays, cur, dt, init = inputs
    arrays, solver_arrays, dt, init = jax.tree.map(lambda x: _lay(x, nb, batch), (arrays, solver_arrays, dt, init))
    if isinstance(spec.model, Circuit) and spec.model.param_index != tuple(range(spec.model.n)):
        idx = np.asarray(spec.model.param_index)
        arrays = eqx.tree_at(lambda c: c.neurons, arrays, jax.tree.map(lambda p: p[idx], arrays.neurons))
    if init is None:
        init = _batch_minor_neurons(spec, arrays).init_state()
    return arrays, solver_arrays, cur, dt, init


def _lay(x, nb: int, batch: tuple[int, ...]):
    """(k..., b...) -> (k..., B): broadcast the ``nb`` trailing batch axes to ``batch`` and flatten them."""
    k = x.shape[: x.ndim - nb]
    return jnp.broadcast_to(x, k + batch).reshape(*k, math.prod(batch))


def _expand_input(i_k, nb: int, batch: tuple[int, ...]):
    """One step's input current (n, b...) -> (n, B), inside the step (fused into its consumers)."""
    return _lay(i_k, nb, batch)


def _batch_minor_neurons(spec: _BatchMinorSpec, arrays):
    model = eqx.combine(arrays, spec.model)
    return model.neurons if isinstance(model, Circuit) else model


def _batch_minor_step(spec: _BatchMinorSpec, arrays, solver_arrays, state, i_k, dt):
    """One step on (n, B) states (the circuit's couplings along axis 0, as :meth:`Circuit.step` along the last)."""
    model = eqx.combine(arrays, spec.model)
    solver = eqx.combine(solver_arrays, spec.solver)
    dt = spec.dt if dt is None else dt
    if isinstance(model, Circuit):
        i_k = i_k + model.synapses.currents(state.V, neuron_axis=0) + model.gaps.currents(state.V, neuron_axis=0)
        return model.neurons.step(state, i_k, dt, solver)
    return model.step(state, i_k, dt, solver)


def _record_fn(spec: _BatchMinorSpec):
    rec_idx = np.asarray(spec.record_index)

    def record(state):
        return state.V[rec_idx], (state.Ca[rec_idx] if hasattr(state, "Ca") else None)

    return record


def _unlay(batch, tree):
    """(..., B) -> (..., b...) on every leaf."""
    return jax.tree.map(lambda y: y.reshape(*y.shape[:-1], *batch), tree)


def _batch_minor_forward(spec: _BatchMinorSpec, nb: int, inputs, keep_states: bool = False):
    """(V, Ca, final state) with the batch axes last; with ``keep_states`` also the state before every step
    (leading time axis, padded to a multiple of the stride), which the backward pass starts from."""
    batch = _batch_shape(nb, inputs)
    arrays, solver_arrays, cur, dt, state0 = _batch_minor_prepare(spec, nb, inputs)

    def step(state, i_k):
        return _batch_minor_step(spec, arrays, solver_arrays, state, _expand_input(i_k, nb, batch), dt)

    final, (v, ca), states = _scan_steps(step, state0, cur, _record_fn(spec), spec.stride, keep_states)
    out = _unlay(batch, (v, ca, final))
    return (out, _unlay(batch, states)) if keep_states else out


def _batch_minor_backward(spec: _BatchMinorSpec, nb: int, inputs, states, g):
    """Cotangents of ``inputs`` from the stored states and the cotangents ``g`` of (V, Ca, final state): a reverse
    scan of the per-step VJP (the state's cotangent is carried, the parameters' accumulated), then the VJP of
    :func:`_batch_minor_prepare` (broadcasts, shared sets, initial state).

    Under vmap this is the VJP of every batch element: the cotangents carry the full batch shape, also for inputs
    shared by the batch (JAX sums them where the batch axis is not the caller's).
    """
    batch = _batch_shape(nb, (inputs, states))  # the stored states have the full batch shape
    arrays, solver_arrays, cur, dt, init = inputs
    shared = jax.tree.map(lambda x: jnp.broadcast_to(x, (*x.shape[: x.ndim - nb], *batch)),
                          (arrays, solver_arrays, dt, init))

    def prepare(x):
        a, s_, c, d, i0 = _batch_minor_prepare(spec, nb, (x[0], x[1], cur, x[2], x[3]))
        return a, s_, d, i0

    (arrays, solver_arrays, dt, _), prepare_vjp = jax.vjp(prepare, shared)
    # a cotangent may lack batch axes its output has (e.g. the zero one of an unused final state)
    states, g = jax.tree.map(lambda y: _lay(y, nb, batch), (states, g))
    g_v, g_ca, g_final = g
    steps, stride = cur.shape[0], spec.stride
    padded = states.V.shape[0]
    cur = jnp.concatenate([cur, jnp.zeros((padded - steps, *cur.shape[1:]), cur.dtype)])

    def per_step(gr):  # sample cotangents (samples, rec, B) -> one per step, at the recorded steps
        if gr is None or stride == 1:
            return gr
        spread = jnp.zeros((gr.shape[0], stride, *gr.shape[1:]), gr.dtype).at[:, 0].set(gr)
        return spread.reshape(padded, *gr.shape[1:])

    rec_idx = np.asarray(spec.record_index)
    diff = (arrays, solver_arrays, dt)

    def body(carry, xs):
        lam, acc = carry
        state, i_k, gv_k, gca_k = xs

        def f(st, d, i):
            return _batch_minor_step(spec, d[0], d[1], st, i, d[2])

        # the cotangent of the step's expanded (n, B) input: one per batch element
        _, vjp = jax.vjp(f, state, diff, _expand_input(i_k, nb, batch))
        d_state, d_diff, d_i = vjp(lam)
        d_state = d_state._replace(V=d_state.V.at[rec_idx].add(gv_k))  # the record of this step's state
        if gca_k is not None:
            d_state = d_state._replace(Ca=d_state.Ca.at[rec_idx].add(gca_k))
        return (d_state, jax.tree.map(jnp.add, acc, d_diff)), d_i

    zeros = jax.tree.map(jnp.zeros_like, diff)
    (d_state0, d_diff), d_cur = jax.lax.scan(
        body, (g_final, zeros), (states, cur, per_step(g_v), per_step(g_ca)), reverse=True)
    d_arrays, d_solver, d_dt = d_diff
    d_arrays, d_solver, d_dt, d_init = prepare_vjp((d_arrays, d_solver, d_dt, d_state0))[0]
    d_cur = d_cur[:steps].reshape(*d_cur.shape[:-1], *batch)
    return d_arrays, d_solver, d_cur, d_dt, d_init


def _vmap_rule(fn, axis_size, in_batched, args):
    """custom_vmap rule: the new batch axis goes last on every input (size 1 where unbatched), ``fn`` runs one level
    deeper, and each output's last axis comes back to the front (dropped, reported unbatched, where it is 1)."""
    del axis_size
    args = jax.tree.map(lambda x, b: jnp.moveaxis(x, 0, -1) if b else x[..., None], args, in_batched)
    out_leaves, treedef = jax.tree.flatten(fn(args))
    outs, batched = [], []
    for y in out_leaves:
        if y.shape[-1] == 1:
            outs.append(y[..., 0])
            batched.append(False)
        else:
            outs.append(jnp.moveaxis(y, -1, 0))
            batched.append(True)
    return jax.tree.unflatten(treedef, outs), jax.tree.unflatten(treedef, batched)


def _custom_vmapped(fn, nb: int):
    """``fn(nb)`` (a function of one pytree argument) whose vmap runs ``fn(nb + 1)`` through :func:`_vmap_rule`."""
    f = custom_vmap(fn(nb))

    @f.def_vmap
    def _(axis_size, in_batched, args):
        return _vmap_rule(_custom_vmapped(fn, nb + 1), axis_size, in_batched[0], args)

    return f


def _batch_minor_fn(spec: _BatchMinorSpec, nb: int):
    """The level-``nb`` simulation function of the inputs (see the comment above)."""
    primal = _custom_vmapped(lambda k: lambda x: _batch_minor_forward(spec, k, x), nb)
    forward = _custom_vmapped(lambda k: lambda x: _batch_minor_forward(spec, k, x, keep_states=True), nb)
    backward = _custom_vmapped(lambda k: lambda a: _batch_minor_backward(spec, k, *a), nb)

    @jax.custom_vjp
    def run(inputs):
        return primal(inputs)

    def fwd(inputs):
        out, states = forward(inputs)
        return out, (inputs, states)

    def bwd(res, g):
        inputs, states = res
        return (backward((inputs, states, g)),)

    run.defvjp(fwd, bwd)
    return run


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

    Works under ``jit``, ``vmap`` and reverse-mode differentiation (``grad``, ``vjp``) with respect to the
    parameters, the current, ``dt`` and ``init_state``. For the built-in neuron models (LI, SHH, CHH and circuits
    of them) forward mode (``jax.jvp``, ``jacfwd``) is not available: they run through a custom batching rule
    (``vmap``-ed calls are laid out with the batch as the fast axis) that is differentiated by a custom VJP.

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
