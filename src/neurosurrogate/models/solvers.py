"""Fixed-step solvers for neurons written as linear relaxations.

Every state variable y of the project's neuron models obeys, with the other variables frozen over one step,

    dy/dt = b - a * y          (a >= 0: relaxation rate, b: drive)

(voltage: a = sum(g)/C_m, b = (I_in + sum(g E))/C_m; gate x: a = 1/tau_x, b = x_inf/tau_x; calcium: a = 1/tau_Ca,
b = -rho_Ca I_Ca). A solver turns (y, a, b, dt) into y(t + dt). Following the thesis' algorithm 3.3, the voltage is
updated first and the gates and concentrations are then updated at the new voltage (implicit solvers) or at the old
one (explicit Euler).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp


class AbstractSolver(eqx.Module):
    """A one-step update rule y(t + dt) = update(y, a, b, dt) for dy/dt = b - a y."""

    #: gates and concentrations see the new voltage (True) or the old one (False)
    gates_see_new_voltage: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def update(self, y, a, b, dt):
        """Advance y by one step of length dt (ms)."""


class SemiImplicit(AbstractSolver):
    """The thesis' scheme (eq. 3.22-3.24): linearly-implicit Euler for V, backward Euler for gates and Ca.

    First order in dt and unconditionally stable (stays bounded at dt = 340 ms).
    """

    gates_see_new_voltage: ClassVar[bool] = True

    def update(self, y, a, b, dt):
        # thesis eq. 3.22 (voltage) / 3.23 (calcium) / 3.24 (gates): y' = (y + dt b) / (1 + dt a)
        return (y + dt * b) / (1.0 + dt * a)


class ExponentialEuler(AbstractSolver):
    """Exact for each variable with the others frozen (exact for the leaky integrator); first order overall."""

    gates_see_new_voltage: ClassVar[bool] = True

    def update(self, y, a, b, dt):
        z = a * dt
        small = z < 1e-6
        z_safe = jnp.where(small, 1.0, z)
        phi = jnp.where(small, 1.0 - 0.5 * z, -jnp.expm1(-z_safe) / z_safe)  # (1 - e^-z) / z
        return y + dt * (b - a * y) * phi


class ExplicitEuler(AbstractSolver):
    """Forward Euler (thesis eq. 3.25): diverges once dt exceeds the fastest time constant."""

    gates_see_new_voltage: ClassVar[bool] = False

    def update(self, y, a, b, dt):
        return y + dt * (b - a * y)
