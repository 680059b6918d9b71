"""The neuron interface shared by every model (biophysical or learned)."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._params import ParamSpec, bounds_of, full_params, random_params
from .solvers import AbstractSolver, SemiImplicit


class AbstractNeuron(eqx.Module):
    """``n`` neurons of one model; every parameter leaf has shape ``(n,)`` (or ``(P, n)`` in a stacked population).

    Subclasses are final and define ``PARAMS`` (name -> :class:`ParamSpec`), a NamedTuple ``State`` whose first field
    is ``V`` (mV), and the two relaxation-rate methods used by the solvers.
    """

    PARAMS: ClassVar[dict[str, ParamSpec]]
    State: ClassVar[type]
    #: True when the state has a calcium concentration field ``Ca``
    has_calcium: ClassVar[bool] = False
    #: True when ``init_state`` and ``step`` act element by element on parameter and state arrays of any common shape
    #: (e.g. ``(n, batch)``); the simulator then lays vmapped batches out neuron-major with the batch as the fast axis
    elementwise: ClassVar[bool] = False

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def default(cls, n: int = 1, **overrides):
        """``n`` neurons with the reference parameters; keyword overrides set (broadcast) values by name."""
        return cls(**full_params(cls.PARAMS, (int(n),), overrides))

    @classmethod
    def random(cls, key: jax.Array, n: int = 1, population: int | None = None):
        """Parameters drawn uniformly in the initialisation ranges (a leading population axis if given)."""
        shape = (int(n),) if population is None else (int(population), int(n))
        return cls(**random_params(cls.PARAMS, key, shape))

    def bounds(self) -> tuple[dict, dict]:
        """Per-leaf lower and upper bounds (NumPy arrays keyed by parameter name)."""
        return bounds_of(self, self.PARAMS)

    @property
    def n(self) -> int:
        """Number of neurons."""
        return int(jnp.shape(getattr(self, next(iter(self.PARAMS))))[-1])

    # ---- dynamics -----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def init_state(self):
        """The resting initial state, each field shaped ``(n,)``."""

    @abc.abstractmethod
    def voltage_rates(self, state, i_in):
        """(a, b) of the voltage relaxation dV/dt = b - a V for input current ``i_in`` (uA/cm2)."""

    @abc.abstractmethod
    def internal_rates(self, state, v):
        """(a, b) State-shaped tuples (``V`` slot None) for gates and concentrations at voltage ``v``."""

    def step(self, state, i_in, dt, solver: AbstractSolver = SemiImplicit()):
        """One time step (thesis algorithm 3.3): voltage first, then gates and concentrations."""
        a, b = self.voltage_rates(state, i_in)
        v_new = solver.update(state.V, a, b, dt)
        v_gates = v_new if solver.gates_see_new_voltage else state.V
        a_int, b_int = self.internal_rates(state, v_gates)
        updates = {
            name: solver.update(getattr(state, name), getattr(a_int, name), getattr(b_int, name), dt)
            for name in state._fields
            if name != "V"
        }
        return state._replace(V=v_new, **updates)

    def derivatives(self, state, i_in):
        """The right-hand side dState/dt (for reference solvers such as diffrax)."""
        a, b = self.voltage_rates(state, i_in)
        a_int, b_int = self.internal_rates(state, state.V)
        out = {name: getattr(b_int, name) - getattr(a_int, name) * getattr(state, name) for name in state._fields[1:]}
        return state._replace(V=b - a * state.V, **out)


def sigmoid_gate(v, mdp, scale):
    """Steady-state activation x_inf(V) = sigmoid((V - mdp) / scale) (thesis eq. 3.9)."""
    return jax.nn.sigmoid((v - mdp) / scale)
