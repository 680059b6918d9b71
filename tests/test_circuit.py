"""Circuits, populations and the JAX transformations (jit, vmap, grad) on every public numeric function."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import (
    CElegansHH,
    GapJunctions,
    build_circuit,
    load_circuit,
    simulate,
    simulate_population,
    stack_models,
)
from neurosurrogate.models import ChemicalSynapses
from neurosurrogate.simulate import population_member


def test_packaged_circuits_match_reference_counts():
    tw = load_circuit("tap_withdrawal")
    assert tw.n == 9 and len(tw.synapses.pre) == 23 and len(tw.gaps.a) == 6
    assert tw.sensors == ("PVD", "PLM", "AVM", "ALM") and tw.outputs == ("AVA", "AVB")
    fl = load_circuit("forward-locomotion")
    assert fl.n == 39 and len(fl.synapses.pre) == 114 and len(fl.gaps.a) == 82
    exc = fl.synapses.excitatory
    assert exc.sum() == 57 and (~exc).sum() == 57
    # 1630 free parameters in the full CHH setting (thesis 4.5): 39*28 + 114*4 + 82
    n_params = sum(np.size(x) for x in jax.tree.leaves(eqx.filter(fl, eqx.is_inexact_array)))
    assert n_params == 39 * 28 + 114 * 4 + 82 == 1630
    grouped = load_circuit("forward_locomotion", grouped=True)
    assert grouped.neurons.n == 1 and grouped.expanded_neurons().n == 39


def test_gap_junction_currents_sum_to_zero_and_match_definition():
    gaps = GapJunctions.uniform([0, 1, 2], [1, 2, 3], 4, G=0.3)
    v = jnp.array([-60.0, -20.0, 10.0, -70.0])
    i = np.asarray(gaps.currents(v))
    assert abs(i.sum()) < 1e-4
    assert i[0] == pytest.approx(0.3 * (-20.0 + 60.0), rel=1e-6)  # I_a = G (V_b - V_a)
    assert i[3] == pytest.approx(0.3 * (10.0 + 70.0), rel=1e-6)


def test_chemical_synapse_current_matches_definition():
    syn = ChemicalSynapses.from_presets([0], [1], ["SYNAPSE"], 2)
    v = jnp.array([-25.0, -50.0])
    expected = 0.5 / (1 + np.exp(-(-25.0 + 20.0) / 5.0)) * (10.0 + 50.0)
    np.testing.assert_allclose(np.asarray(syn.currents(v)), [0.0, expected], rtol=1e-6)


def test_one_neuron_circuit_equals_neuron_alone():
    current = np.where(np.arange(1000) > 200, 12.0, 0.0)
    alone = simulate(CElegansHH.default(), current, dt=0.5)
    circuit = build_circuit(["X"], [], [], neuron="CHH", sensors=["X"])
    within = simulate(circuit, current, dt=0.5)
    np.testing.assert_array_equal(np.asarray(alone.V), np.asarray(within.V))
    np.testing.assert_array_equal(np.asarray(alone.Ca), np.asarray(within.Ca))


def test_grouped_circuit_equals_circuit_with_identical_sets():
    full = load_circuit("tap_withdrawal")
    grouped = load_circuit("tap_withdrawal", grouped=True)
    current = np.zeros((400, 4))
    current[100:300, 1] = 20.0
    np.testing.assert_allclose(np.asarray(simulate(full, current, dt=0.5).V),
                               np.asarray(simulate(grouped, current, dt=0.5).V), rtol=1e-6)


def test_population_and_stimulus_batch_equal_individual_runs():
    key = jax.random.PRNGKey(1)
    members = [CElegansHH.random(k, 1) for k in jax.random.split(key, 3)]
    pop = stack_models(members)
    currents = np.stack([np.full((300, 1), a) for a in (0.0, 5.0)])
    traj = simulate_population(pop, currents, dt=1.0)
    assert traj.V.shape == (3, 2, 300, 1)
    for p, m in enumerate(members):
        assert np.allclose(np.asarray(population_member(pop, p).C_m), np.asarray(m.C_m))
        for s in range(2):
            single = simulate(m, currents[s], dt=1.0)
            np.testing.assert_allclose(np.asarray(traj.V[p, s]), np.asarray(single.V), rtol=1e-5, atol=1e-4)
    batch = simulate(members[0], currents, dt=1.0)  # a 3-D current is a batch of stimuli
    np.testing.assert_allclose(np.asarray(batch.V), np.asarray(traj.V[0]), rtol=1e-6)


def test_stride_records_every_kth_sample():
    current = np.full(1000, 10.0)
    full = simulate(CElegansHH.default(), current, dt=0.5)
    strided = simulate(CElegansHH.default(), current, dt=0.5, stride=7)
    assert strided.V.shape[0] == -(-1000 // 7)
    np.testing.assert_array_equal(np.asarray(strided.V), np.asarray(full.V[::7]))
    assert strided.sample_dt == 3.5 and strided.time[1] == 3.5


def test_simulate_under_jit_vmap_and_grad():
    circuit = load_circuit("tap_withdrawal")
    current = np.zeros((200, 4))
    current[50:150, 1] = 20.0

    @jax.jit
    def run(c, cur):
        return simulate(c, cur, dt=0.5, record=["AVA", "AVB"]).V

    eager = np.asarray(simulate(circuit, current, dt=0.5, record=["AVA", "AVB"]).V)
    np.testing.assert_allclose(np.asarray(run(circuit, jnp.asarray(current))), eager, rtol=1e-6)
    batched = jax.vmap(run, in_axes=(None, 0))(circuit, jnp.stack([current, 2 * current]))
    assert batched.shape == (2, 200, 2)
    np.testing.assert_allclose(np.asarray(batched[0]), eager, rtol=1e-6)
    grads = jax.grad(lambda c: jnp.mean(run(c, jnp.asarray(current)) ** 2))(circuit)
    flat = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(np.isfinite(np.asarray(g)).all() for g in flat)
    assert np.abs(np.asarray(grads.synapses.G)).max() > 0 and np.abs(np.asarray(grads.gaps.G)).max() > 0
    # gradient w.r.t. the input current itself
    g_in = jax.grad(lambda cur: jnp.mean(run(circuit, cur)))(jnp.asarray(current))
    assert g_in.shape == current.shape and np.abs(np.asarray(g_in)).max() > 0


def test_population_member_blow_up_is_reported_not_fatal():
    good = CElegansHH.default()
    bad = eqx.tree_at(lambda m: m.C_m, good, jnp.array([0.0]))  # zero capacitance: the step divides inf by inf
    traj = simulate_population(stack_models([good, bad]), np.full((500, 1), 10.0), dt=1.0)
    assert np.asarray(traj.finite()).tolist() == [True, False]
    np.testing.assert_allclose(np.asarray(traj.V[0]), np.asarray(simulate(good, np.full(500, 10.0), dt=1.0).V),
                               rtol=1e-6)
