"""Graded chemical synapses and gap junctions (thesis eq. 3.17-3.19).

Both are stateless: their currents are computed from the previous step's voltages and added to the input current of the
postsynaptic neurons (thesis algorithm 3.4). Connectivity is static (index tuples); parameters are array leaves.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._config import as_float
from .._types import PerNeuron, PerSynapse
from ._params import bounds_of, spec

#: ODYNN's synapse presets (G mS/cm2, mdp mV, scale mV, E mV)
SYNAPSE_PRESETS: dict[str, dict[str, float]] = {
    "SYNAPSE": {"G": 0.5, "mdp": -20.0, "scale": 5.0, "E": 10.0},
    "SYNAPSE1": {"G": 0.2, "mdp": -30.0, "scale": 2.0, "E": 20.0},
    "SYNAPSE2": {"G": 1.0, "mdp": -50.0, "scale": 5.0, "E": -10.0},
    "SYNAPSE_inhib": {"G": 0.5, "mdp": 0.0, "scale": 10.0, "E": -70.0},
    "SYNAPSE_inhib2": {"G": 0.2, "mdp": -20.0, "scale": -6.0, "E": -80.0},
}
#: ODYNN's gap-junction preset (G_gap, mS/cm2)
GAP_PRESET = 0.2
#: the reversal potential separating excitatory (E > -60 mV) from inhibitory synapses
E_EXCITATORY_THRESHOLD = -60.0


def _incidence(index: tuple[int, ...], n: int) -> np.ndarray:
    """One-hot matrix (len(index), n) mapping per-connection currents onto neurons."""
    m = np.zeros((len(index), n))
    m[np.arange(len(index)), np.asarray(index, dtype=int)] = 1.0
    return m


def _fan_in(index: tuple[int, ...], n: int) -> np.ndarray:
    """(n, k) indices of the connections landing on each neuron, padded with ``len(index)`` (a zero slot).

    ``concat([x, 0])[_fan_in(index, n)].sum(-1)`` equals the one-hot product ``x @ _incidence(index, n)``
    but is a static gather + reduction, which XLA fuses with the surrounding elementwise work (a tiny matmul
    per time step is a separate, comparatively slow, kernel on CPU and in the backward pass).
    """
    lists = [[j for j, i in enumerate(index) if i == k] for k in range(n)]
    width = max(1, max((len(x) for x in lists), default=0))
    return np.asarray([x + [len(index)] * (width - len(x)) for x in lists], dtype=np.int32)


def _take(x, index, axis: int):
    """``x`` gathered at static ``index`` along ``axis`` (0: the leading axis, -1: the trailing one)."""
    index = np.asarray(index)
    return x[index] if axis == 0 else x[..., index]


def _sum_into(x, fan_in: np.ndarray, axis: int = -1):
    """Sum per-connection values ``x`` (..., m) into per-neuron totals (..., n) via a fan-in table.

    ``axis`` = 0 takes the connections on the leading axis instead: (m, ...) -> (n, ...).
    """
    if axis == 0:
        padded = jnp.concatenate([x, jnp.zeros((1, *x.shape[1:]), x.dtype)], axis=0)
        return padded[fan_in].sum(axis=1)
    padded = jnp.concatenate([x, jnp.zeros((*x.shape[:-1], 1), x.dtype)], axis=-1)
    return padded[..., fan_in].sum(axis=-1)


def _check_axis(axis: int) -> int:
    if axis not in (0, -1):
        raise ValueError(f"neuron_axis must be 0 or -1, got {axis}")
    return axis


class ChemicalSynapses(eqx.Module):
    """Graded synapses: I_post += G sigmoid((V_pre - mdp)/scale) (E - V_post) (thesis eq. 3.17)."""

    G: PerSynapse  #: maximal conductance, mS/cm2
    mdp: PerSynapse  #: presynaptic midpoint, mV
    scale: PerSynapse  #: presynaptic slope, mV
    E: PerSynapse  #: reversal potential, mV
    pre: tuple[int, ...] = eqx.field(static=True)
    post: tuple[int, ...] = eqx.field(static=True)
    n_neurons: int = eqx.field(static=True)

    PARAMS = {
        "G": spec(0.5, 1e-7, 0.5, (1e-7, 0.5), "mS/cm2"),
        "mdp": spec(-20.0, init=(-60.0, 0.0), unit="mV"),
        "scale": spec(5.0, init=(-10.0, 10.0), unit="mV"),
        "E": spec(10.0, init=(-120.0, 50.0), unit="mV"),
    }

    @classmethod
    def from_presets(cls, pre, post, presets, n_neurons: int) -> ChemicalSynapses:
        """Synapses from (pre, post) index lists and a preset name per synapse."""
        values = {k: [] for k in ("G", "mdp", "scale", "E")}
        for name in presets:
            if name not in SYNAPSE_PRESETS:
                raise ValueError(f"unknown synapse preset {name!r}; choose one of {sorted(SYNAPSE_PRESETS)}")
            for k in values:
                values[k].append(SYNAPSE_PRESETS[name][k])
        return cls(
            **{k: as_float(np.asarray(v, dtype=float).reshape(-1)) for k, v in values.items()},
            pre=tuple(int(i) for i in pre),
            post=tuple(int(i) for i in post),
            n_neurons=int(n_neurons),
        )

    @property
    def excitatory(self) -> np.ndarray:
        """Boolean mask of excitatory synapses (E > -60 mV) under the current values."""
        return np.asarray(self.E) > E_EXCITATORY_THRESHOLD

    def bounds(self) -> tuple[dict, dict]:
        """Bounds per leaf; E is [-60, 50] for excitatory and [-120, -60] for inhibitory synapses."""
        lower, upper = bounds_of(self, self.PARAMS)
        exc = np.broadcast_to(self.excitatory, np.shape(self.E))
        lower["E"] = np.where(exc, -60.0, -120.0)
        upper["E"] = np.where(exc, 50.0, -60.0)
        return lower, upper

    def currents(self, v: PerNeuron, *, neuron_axis: int = -1) -> PerNeuron:
        """Total synaptic current into each neuron (uA/cm2) for voltages ``v`` (n,).

        ``neuron_axis`` = 0 takes neurons on the leading axis of ``v`` (n, ...) and synapses on the leading axis of
        the parameter leaves (m, ...) (the simulator's batched layout); -1 (default) is the trailing axis.
        """
        axis = _check_axis(neuron_axis)
        if not self.pre:
            return jnp.zeros_like(v)
        v_pre, v_post = _take(v, self.pre, axis), _take(v, self.post, axis)
        i = self.G * jax.nn.sigmoid((v_pre - self.mdp) / self.scale) * (self.E - v_post)
        return _sum_into(i, _fan_in(self.post, self.n_neurons), axis)


class GapJunctions(eqx.Module):
    """Electrical synapses: I_a += G (V_b - V_a), I_b += G (V_a - V_b) (thesis eq. 3.19); currents sum to zero."""

    G: PerSynapse  #: gap conductance, mS/cm2
    a: tuple[int, ...] = eqx.field(static=True)
    b: tuple[int, ...] = eqx.field(static=True)
    n_neurons: int = eqx.field(static=True)

    PARAMS = {"G": spec(GAP_PRESET, 1e-7, 0.5, (1e-7, 0.5), "mS/cm2")}

    @classmethod
    def uniform(cls, a, b, n_neurons: int, G: float = GAP_PRESET) -> GapJunctions:
        """Gap junctions between index lists ``a`` and ``b``, all with conductance ``G``."""
        return cls(G=as_float(np.full(len(a), G)), a=tuple(int(i) for i in a), b=tuple(int(i) for i in b),
                   n_neurons=int(n_neurons))

    def bounds(self) -> tuple[dict, dict]:
        return bounds_of(self, self.PARAMS)

    def currents(self, v: PerNeuron, *, neuron_axis: int = -1) -> PerNeuron:
        """Total gap-junction current into each neuron (uA/cm2); ``neuron_axis`` as for chemical synapses."""
        axis = _check_axis(neuron_axis)
        if not self.a:
            return jnp.zeros_like(v)
        # neuron a receives -G (V_a - V_b), neuron b receives +G (V_a - V_b)
        x = self.G * (_take(v, self.a, axis) - _take(v, self.b, axis))
        return _sum_into(jnp.concatenate([-x, x], axis=axis), _fan_in(self.a + self.b, self.n_neurons), axis)

