"""Gradients of a trace loss through the simulator against central finite differences (float64)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import build_circuit, simulate


def _small_circuit():
    return build_circuit(
        ["A", "B", "C"],
        [("A", "B", "SYNAPSE"), ("B", "C", "SYNAPSE_inhib"), ("C", "A", "SYNAPSE2")],
        [("A", "C")],
        neuron="CHH", sensors=["A"], outputs=["B", "C"],
    )


def _loss_fn(current, target_v, target_ca):
    def loss(circuit):
        traj = simulate(circuit, current, dt=0.5, record=["B", "C"])
        return jnp.mean((traj.V - target_v) ** 2) + jnp.mean((traj.Ca - target_ca) ** 2)

    return loss


# (path into the circuit, leaf index) for every parameter type: neuron, chemical synapse, gap junction
CASES = [("neurons", name) for name in ("C_m", "g_Ca", "g_Ks", "g_Kf", "g_L", "E_Ca", "E_K", "E_L", "p_tau",
                                         "q_scale", "n_mdp", "e_scale", "f_tau", "h_alpha", "h_mdp", "tau_Ca",
                                         "rho_Ca")]
CASES += [("synapses", name) for name in ("G", "mdp", "scale", "E")] + [("gaps", "G")]


@pytest.mark.parametrize("part,name", CASES)
def test_gradient_matches_central_finite_differences(x64, part, name):
    circuit = _small_circuit()
    t = np.arange(240) * 0.5
    current = (25.0 * ((t > 10) & (t < 80)))[:, None]
    ref = simulate(circuit, current, dt=0.5, record=["B", "C"])
    loss = _loss_fn(current, np.asarray(ref.V) + 3.0, 1.2 * np.asarray(ref.Ca))
    grads = jax.grad(loss)(circuit)

    def get(c):
        return getattr(getattr(c, part), name)

    g = np.asarray(get(grads))
    base = np.asarray(get(circuit))
    for i in range(base.shape[0]):
        h = 1e-4 * max(abs(base[i]), 1e-1)

        def at(delta, i=i):
            return float(loss(eqx.tree_at(get, circuit, jnp.asarray(base).at[i].add(delta))))

        fd = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)  # fourth-order central difference
        assert g[i] == pytest.approx(fd, rel=1e-4, abs=1e-9 * max(1.0, abs(fd)) + 1e-10), (part, name, i, g[i], fd)
