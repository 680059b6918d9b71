"""Biophysical neuron models of the ODYNN thesis (section 3.2): LI, SHH and CHH.

Units: V in mV, t in ms, C_m in uF/cm2, conductances in mS/cm2, currents in uA/cm2, Ca in arbitrary (uM-like) units.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .._types import PerNeuron
from ._neuron import AbstractNeuron, sigmoid_gate
from ._params import INF, check_specs, spec


# ------------------------------------------------------------------------------------------------ leaky integrate
class LIState(NamedTuple):
    V: PerNeuron  #: membrane potential, mV


class LeakyIntegrate(AbstractNeuron):
    """Leaky integrator, C_m dV/dt = I_in + g_L (E_L - V) (thesis eq. 3.2; 3 parameters)."""

    C_m: PerNeuron  #: membrane capacitance, uF/cm2
    g_L: PerNeuron  #: leak conductance, mS/cm2
    E_L: PerNeuron  #: leak reversal potential, mV

    PARAMS = {  # thesis table A.4
        "C_m": spec(1.0, 0.5, INF, (0.5, 40.0), "uF/cm2"),
        "g_L": spec(0.1, 1e-9, 10.0, (1e-5, 10.0), "mS/cm2"),
        "E_L": spec(-60.0, init=(-70.0, -45.0), unit="mV"),
    }
    State = LIState
    elementwise = True

    def init_state(self) -> LIState:
        return LIState(V=jnp.full(self.E_L.shape, -60.0, self.E_L.dtype))

    def voltage_rates(self, state, i_in):
        return self.g_L / self.C_m, (i_in + self.g_L * self.E_L) / self.C_m

    def internal_rates(self, state, v):
        return LIState(V=None), LIState(V=None)


# ------------------------------------------------------------------------------------------------ simple HH
class SHHState(NamedTuple):
    V: PerNeuron  #: mV
    a: PerNeuron  #: K activation gate
    b: PerNeuron  #: K inactivation gate


class SimpleHH(AbstractNeuron):
    """Simple Hodgkin-Huxley: C dV/dt = I + g_K a^3 b (E_K - V) + g_L (E_L - V) (thesis 3.2.2; 11 parameters)."""

    C_m: PerNeuron  #: uF/cm2
    g_L: PerNeuron  #: mS/cm2
    E_L: PerNeuron  #: mV
    g_K: PerNeuron  #: mS/cm2
    E_K: PerNeuron  #: mV
    a_mdp: PerNeuron  #: mV
    a_scale: PerNeuron  #: mV
    a_tau: PerNeuron  #: ms
    b_mdp: PerNeuron  #: mV
    b_scale: PerNeuron  #: mV
    b_tau: PerNeuron  #: ms

    PARAMS = {  # thesis table A.5
        "C_m": spec(1.0, 0.5, 40.0, (0.5, 40.0), "uF/cm2"),
        "g_L": spec(0.1, 1e-9, 10.0, (1e-5, 10.0), "mS/cm2"),
        "E_L": spec(-60.0, init=(-70.0, -45.0), unit="mV"),
        "g_K": spec(0.5, 1e-9, 10.0, (1e-5, 10.0), "mS/cm2"),
        "E_K": spec(30.0, init=(-40.0, 30.0), unit="mV"),
        "a_mdp": spec(-30.0, init=(-50.0, 0.0), unit="mV"),
        "a_scale": spec(20.0, 1.0, 200.0, (1.0, 200.0), "mV"),
        "a_tau": spec(500.0, 1.0, 1000.0, (1.0, 1000.0), "ms"),
        "b_mdp": spec(-5.0, init=(-30.0, 20.0), unit="mV"),
        "b_scale": spec(-3.0, -200.0, -1.0, (-200.0, -1.0), "mV"),
        "b_tau": spec(30.0, 1.0, 1000.0, (1.0, 1000.0), "ms"),
    }
    State = SHHState
    elementwise = True

    def init_state(self) -> SHHState:
        z = jnp.zeros(self.C_m.shape, self.C_m.dtype)
        return SHHState(V=z - 60.0, a=z, b=z + 1.0)

    def voltage_rates(self, state, i_in):
        g_k = self.g_K * state.a**3 * state.b
        a = (g_k + self.g_L) / self.C_m
        b = (i_in + g_k * self.E_K + self.g_L * self.E_L) / self.C_m
        return a, b

    def internal_rates(self, state, v):
        a_inf = sigmoid_gate(v, self.a_mdp, self.a_scale)
        b_inf = sigmoid_gate(v, self.b_mdp, self.b_scale)
        rates = SHHState(V=None, a=1.0 / self.a_tau, b=1.0 / self.b_tau)
        drives = SHHState(V=None, a=a_inf / self.a_tau, b=b_inf / self.b_tau)
        return rates, drives


# ------------------------------------------------------------------------------------------------ C. elegans HH
class CHHState(NamedTuple):
    V: PerNeuron  #: mV
    p: PerNeuron  #: fast K activation
    q: PerNeuron  #: fast K inactivation
    n: PerNeuron  #: slow K activation
    e: PerNeuron  #: Ca activation
    f: PerNeuron  #: Ca voltage inactivation
    Ca: PerNeuron  #: intracellular calcium


def _gate(default_tau, default_scale, default_mdp, tau_init, scale_sign, mdp_init):
    """Specs of one gate's (tau, scale, mdp); scale >= 1 (activation) or <= -1 (inactivation)."""
    if scale_sign > 0:
        scale = spec(default_scale, 1.0, INF, (1.0, 200.0), "mV")
    else:
        scale = spec(default_scale, -INF, -1.0, (-200.0, -1.0), "mV")
    return spec(default_tau, 1.0, INF, tau_init, "ms"), scale, spec(default_mdp, init=mdp_init, unit="mV")


def _chh_params():
    params = {
        "C_m": spec(20.0, 0.5, INF, (0.5, 40.0), "uF/cm2"),
        "g_Ca": spec(3.0, 1e-5, 10.0, (0.1, 10.0), "mS/cm2"),
        "g_Ks": spec(10.0, 1e-5, 10.0, (0.1, 10.0), "mS/cm2"),
        "g_Kf": spec(0.07, 1e-5, 10.0, (0.1, 10.0), "mS/cm2"),
        "g_L": spec(0.005, 1e-5, 10.0, (1e-4, 0.5), "mS/cm2"),
        "E_Ca": spec(20.0, init=(0.0, 40.0), unit="mV"),
        "E_K": spec(-60.0, init=(-80.0, -40.0), unit="mV"),
        "E_L": spec(-60.0, init=(-80.0, -40.0), unit="mV"),
    }
    gates = {  # name: (tau, scale, mdp, tau init, scale sign, mdp init) -- thesis table A.6
        "p": (100.0, 7.43, -8.05, (1.0, 200.0), +1, (-50.0, 50.0)),
        "q": (150.0, -9.97, -15.6, (1.0, 200.0), -1, (-50.0, 50.0)),
        "n": (25.0, 15.9, 19.9, (200.0, 1000.0), +1, (-50.0, 50.0)),
        "e": (10.0, 6.75, -3.36, (1.0, 200.0), +1, (-30.0, 0.0)),
        "f": (151.0, -5.03, 25.2, (1.0, 200.0), -1, (-50.0, 50.0)),
    }
    for g, args in gates.items():
        params[f"{g}_tau"], params[f"{g}_scale"], params[f"{g}_mdp"] = _gate(*args)
    params["h_alpha"] = spec(0.282, 0.0, 1.0, (0.1, 0.9), "")
    params["h_scale"] = spec(-1.0, -INF, -1.0, (-200.0, -1.0), "")
    params["h_mdp"] = spec(6.42, init=(1.0, 100.0), unit="")
    params["tau_Ca"] = spec(110.0, 0.1, INF, (10.0, 500.0), "ms")
    params["rho_Ca"] = spec(0.23, 1e-5, 100.0, (1e-5, 10.0), "1/(ms uA/cm2)")
    return params


class CElegansHH(AbstractNeuron):
    """C. elegans Hodgkin-Huxley neuron (thesis 3.2.3; 28 parameters; calcium dynamics).

    C dV/dt = I + g_Ca e^2 f h (E_Ca - V) + g_Kf p^4 q (E_K - V) + g_Ks n (E_K - V) + g_L (E_L - V),
    h = 1 + (sigmoid((Ca - h_mdp)/h_scale) - 1) h_alpha, dCa/dt = -rho_Ca I_Ca - Ca / tau_Ca.
    """

    C_m: PerNeuron
    g_Ca: PerNeuron
    g_Ks: PerNeuron
    g_Kf: PerNeuron
    g_L: PerNeuron
    E_Ca: PerNeuron
    E_K: PerNeuron
    E_L: PerNeuron
    p_tau: PerNeuron
    p_scale: PerNeuron
    p_mdp: PerNeuron
    q_tau: PerNeuron
    q_scale: PerNeuron
    q_mdp: PerNeuron
    n_tau: PerNeuron
    n_scale: PerNeuron
    n_mdp: PerNeuron
    e_tau: PerNeuron
    e_scale: PerNeuron
    e_mdp: PerNeuron
    f_tau: PerNeuron
    f_scale: PerNeuron
    f_mdp: PerNeuron
    h_alpha: PerNeuron
    h_scale: PerNeuron
    h_mdp: PerNeuron
    tau_Ca: PerNeuron
    rho_Ca: PerNeuron

    PARAMS = _chh_params()
    State = CHHState
    has_calcium = True
    elementwise = True

    def init_state(self) -> CHHState:
        z = jnp.zeros(self.C_m.shape, self.C_m.dtype)
        return CHHState(V=z - 60.0, p=z, q=z + 0.95, n=z, e=z, f=z + 1.0, Ca=z + 1e-7)

    def _ca_conductance(self, state):
        h = 1.0 + (sigmoid_gate(state.Ca, self.h_mdp, self.h_scale) - 1.0) * self.h_alpha  # thesis eq. 3.12
        return self.g_Ca * state.e**2 * state.f * h

    def voltage_rates(self, state, i_in):
        g_ca = self._ca_conductance(state)
        g_k = self.g_Kf * state.p**4 * state.q + self.g_Ks * state.n
        a = (g_ca + g_k + self.g_L) / self.C_m
        b = (i_in + g_ca * self.E_Ca + g_k * self.E_K + self.g_L * self.E_L) / self.C_m
        return a, b

    def internal_rates(self, state, v):
        i_ca = self._ca_conductance(state) * (v - self.E_Ca)
        rates = CHHState(
            V=None, p=1.0 / self.p_tau, q=1.0 / self.q_tau, n=1.0 / self.n_tau, e=1.0 / self.e_tau,
            f=1.0 / self.f_tau, Ca=1.0 / self.tau_Ca,
        )
        drives = CHHState(
            V=None,
            p=sigmoid_gate(v, self.p_mdp, self.p_scale) / self.p_tau,
            q=sigmoid_gate(v, self.q_mdp, self.q_scale) / self.q_tau,
            n=sigmoid_gate(v, self.n_mdp, self.n_scale) / self.n_tau,
            e=sigmoid_gate(v, self.e_mdp, self.e_scale) / self.e_tau,
            f=sigmoid_gate(v, self.f_mdp, self.f_scale) / self.f_tau,
            Ca=-self.rho_Ca * i_ca,  # thesis eq. 3.13 / 3.23
        )
        return rates, drives


for _cls in (LeakyIntegrate, SimpleHH, CElegansHH):
    check_specs(_cls.PARAMS)

#: models by the short names used in configs and on the command line
NEURON_MODELS: dict[str, type[AbstractNeuron]] = {"LI": LeakyIntegrate, "SHH": SimpleHH, "CHH": CElegansHH}


def neuron_model(name: str) -> type[AbstractNeuron]:
    """Look up a neuron class by short name (LI, SHH, CHH)."""
    try:
        return NEURON_MODELS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown neuron model {name!r}; choose one of {sorted(NEURON_MODELS)}") from None
