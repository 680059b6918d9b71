"""An LSTM neuron (ODYNN thesis 3.2.2): 2 layers x 50 cells, input current in, (V, Ca) out.

The module implements the neuron interface used by :func:`~neurosurrogate.simulate` (``init_state``, ``step``,
``n``), so a trained LSTM neuron simulates anywhere a single neuron module is expected. Every one of its ``n`` neurons
runs the same network. Training uses plain Optax (Adam, the thesis' staircase schedule 0.01 * 0.95^floor(step/9)).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from ..models._neuron import AbstractNeuron


class LSTMState(NamedTuple):
    V: Float[Array, " n"]  #: mV
    Ca: Float[Array, " n"]  #: calcium (units of the training data)
    h: Float[Array, "layer n hidden"]  #: hidden states
    c: Float[Array, "layer n hidden"]  #: cell states


class LSTMNeuron(AbstractNeuron):
    """``n`` neurons sharing one stacked LSTM; V = v_scale * out_0 + v_rest, Ca = ca_scale * out_1 (thesis 3.2.2).

    Attributes:
        cells: the LSTM layers.
        readout: linear map from the last hidden state to two outputs.
        n_neurons: number of neurons.
        i_scale: the input current is multiplied by this before entering the network (thesis code: 1/60).
        v_scale, v_rest: voltage scaling, mV (thesis: 100, -60).
        ca_scale: calcium scaling (thesis: 1000 for its units; set from the training data here).
    """

    cells: tuple[eqx.nn.LSTMCell, ...]
    readout: eqx.nn.Linear
    n_neurons: int = eqx.field(static=True, default=1)
    i_scale: float = eqx.field(static=True, default=1.0 / 60.0)
    v_scale: float = eqx.field(static=True, default=100.0)
    v_rest: float = eqx.field(static=True, default=-60.0)
    ca_scale: float = eqx.field(static=True, default=1000.0)

    PARAMS = {}
    State = LSTMState
    has_calcium = True

    @classmethod
    def create(
        cls, key: jax.Array, *, n: int = 1, layers: int = 2, hidden: int = 50, ca_scale: float = 1000.0
    ):
        """A freshly initialised LSTM neuron.

        Args:
            key: PRNG key.
            n: number of neurons simulated side by side (same weights).
            layers, hidden: network size (thesis: 2 x 50).
            ca_scale: calcium output scale.
        """
        if layers < 1 or hidden < 1:
            raise ValueError(f"invalid LSTM size: got layers={layers}, hidden={hidden}. Both must be >= 1")
        keys = jax.random.split(key, layers + 1)
        cells = tuple(eqx.nn.LSTMCell(1 if i == 0 else hidden, hidden, key=keys[i]) for i in range(layers))
        readout = eqx.nn.Linear(hidden, 2, key=keys[-1])
        return cls(cells, readout, int(n), ca_scale=float(ca_scale))

    @property
    def n(self) -> int:
        return self.n_neurons

    def bounds(self):
        return {}, {}

    def init_state(self) -> LSTMState:
        hidden = self.cells[0].hidden_size
        z = jnp.zeros((len(self.cells), self.n_neurons, hidden), self.readout.weight.dtype)
        return LSTMState(
            V=jnp.full((self.n_neurons,), self.v_rest, z.dtype),
            Ca=jnp.zeros((self.n_neurons,), z.dtype),
            h=z,
            c=z,
        )

    def voltage_rates(self, state, i_in):  # pragma: no cover - not a conductance model
        raise NotImplementedError("an LSTM neuron has no relaxation form; use step()")

    def internal_rates(self, state, v):  # pragma: no cover
        raise NotImplementedError("an LSTM neuron has no relaxation form; use step()")

    def step(self, state: LSTMState, i_in, dt=None, solver=None) -> LSTMState:
        """One time step (the network is trained at a fixed dt; ``dt`` and ``solver`` are ignored)."""

        def one(x, h, c):
            inp = jnp.reshape(x * self.i_scale, (1,))
            hs, cs = [], []
            for k, cell in enumerate(self.cells):
                hk, ck = cell(inp, (h[k], c[k]))
                hs.append(hk)
                cs.append(ck)
                inp = hk
            out = self.readout(inp)
            return out, jnp.stack(hs), jnp.stack(cs)

        out, h, c = jax.vmap(one, in_axes=(0, 1, 1), out_axes=(0, 1, 1))(i_in, state.h, state.c)
        return LSTMState(V=self.v_scale * out[:, 0] + self.v_rest, Ca=self.ca_scale * out[:, 1], h=h, c=c)


def _traces(model: LSTMNeuron, currents):
    """V and Ca of the model for currents (S, T, 1): shapes (S, T, 1) (sample 0 is the initial state)."""
    from ..simulate import _run

    def one(cur):
        v, ca, _, _ = _run(model, cur, 1.0, None, (0,), (0,), 1, None)
        return v, ca

    return jax.vmap(one)(currents)


def lstm_loss(model: LSTMNeuron, currents, v_t, ca_t, w_ca: float = 1.0):
    """Weighted MSE (thesis eq. 3.20) of the LSTM neuron on (S, T, 1) currents and targets."""
    from ..fit.losses import weighted_mse

    v, ca = _traces(model, currents)
    return weighted_mse(v, v_t, ca, ca_t, w_v=1.0, w_ca=w_ca if ca_t is not None else 0.0)


def train_lstm_neuron(
    train,
    test=None,
    *,
    iterations: int = 400,
    lr: float = 0.01,
    decay: float = 0.95,
    clip_norm: float = 5.0,
    w_ca: float = 1.0,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 50,
    progress: bool = True,
) -> tuple[LSTMNeuron, dict]:
    """Train an LSTM neuron on measurements (the same data as the biophysical fits).

    Args:
        train, test: :class:`~neurosurrogate.fit.Measurements` with currents (S, T, 1), V and Ca (S, T, 1).
        iterations: Adam steps (full batch).
        lr, decay: staircase schedule lr * decay^floor(step / 9) (thesis: 0.01, 0.95).
        clip_norm: global-norm gradient clipping.
        w_ca: calcium weight in the loss.
        seed: initialisation seed.
        layers, hidden: network size.
        progress: Rich progress bar.

    Returns:
        (trained model, info dict with ``history``, ``train_loss``, ``test_loss``, ``wall_time_s``).
    """
    if np.shape(train.currents)[-1] != 1 or np.shape(train.V)[-1] != 1:
        raise ValueError(
            f"invalid data: currents {np.shape(train.currents)}, V {np.shape(train.V)}. "
            "An LSTM neuron is trained on one input and one recorded neuron"
        )
    ca_scale = float(np.max(np.abs(train.Ca))) if train.Ca is not None else 1.0
    model = LSTMNeuron.create(
        jax.random.PRNGKey(seed), layers=layers, hidden=hidden, ca_scale=max(ca_scale, 1e-6)
    )

    def arrays(m):
        return (
            jnp.asarray(m.currents, jnp.float32),
            jnp.asarray(m.V, jnp.float32),
            None if m.Ca is None else jnp.asarray(m.Ca, jnp.float32),
        )

    data = arrays(train)
    opt = optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adam(optax.exponential_decay(lr, 9, decay, staircase=True)),
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, data):
        def f(p):
            return lstm_loss(eqx.combine(p, static), *data, w_ca=w_ca)

        loss, grads = jax.value_and_grad(f)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    from rich.progress import Progress

    history = []
    start = time.perf_counter()
    with Progress(disable=not progress) as bar:
        task = bar.add_task("LSTM neuron", total=iterations)
        for _ in range(iterations):
            params, opt_state, loss = step(params, opt_state, data)
            history.append(float(loss))
            bar.update(task, advance=1)
    model = eqx.combine(params, static)
    loss_fn = jax.jit(lambda m, d: lstm_loss(m, *d, w_ca=w_ca))
    info = {
        "history": history,
        "train_loss": float(loss_fn(model, data)),
        "test_loss": None if test is None else float(loss_fn(model, arrays(test))),
        "wall_time_s": time.perf_counter() - start,
    }
    return model, info
