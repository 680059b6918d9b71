"""The batch-minor simulation path (custom_vmap + custom_vjp) against the generic scan under plain autodiff.

`simulate._run` sends element-wise models (LI, SHH, CHH and circuits of them) through `_run_batch_minor`, which
re-lays vmapped batches out neuron-major and has its own VJP; `_run_scan` is the generic path (the model's step
under `lax.scan`, vmap and autodiff as JAX does them). Both must give the same traces, final states and gradients
with respect to every input: parameters, input current, dt and initial state, under any nesting of vmap and grad.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import CElegansHH, LeakyIntegrate, SimpleHH, build_circuit, stack_models
from neurosurrogate.models.solvers import ExplicitEuler, ExponentialEuler, SemiImplicit
from neurosurrogate.simulate import _batch_minor_ok, _run, _run_scan


def _circuit(grouped: bool, neuron: str = "CHH"):
    names = ["A", "B", "C", "D"]
    return build_circuit(
        names,
        [("A", "B", "SYNAPSE"), ("B", "C", "SYNAPSE_inhib"), ("C", "A", "SYNAPSE2"), ("D", "B", "SYNAPSE1"),
         ("A", "C", "SYNAPSE_inhib2")],
        [("A", "D"), ("B", "C")],
        neuron=neuron, groups=[names] if grouped else None, sensors=["A", "D"], outputs=["B", "C"],
    )


def _population(model, p: int, seed: int = 0):
    """``p`` members: every inexact leaf times U(0.9, 1.1)."""
    arrays, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(arrays)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    new = [x[None] * jax.random.uniform(k, (p, *x.shape), x.dtype, 0.9, 1.1) for k, x in zip(keys, leaves,
                                                                                           strict=True)]
    return eqx.combine(jax.tree.unflatten(treedef, new), static)


def _currents(steps: int, k: int, s: int) -> np.ndarray:
    t = np.arange(steps)
    out = np.zeros((s, steps, k))
    for j in range(s):
        out[j, 20 + 10 * j: 90 + 5 * j, j % k] = 15.0 + 5.0 * j
        out[j, 60:120, (j + 1) % k] += 4.0 * np.sin(t[60:120] / 7.0)
    return out


def _loss(run, record, stride, solver, dt):
    """Per-member loss of V and Ca (when present) over a batch of stimuli, plus the mean final voltage."""

    def loss(model, currents):
        def one(cur):
            v, ca, _, final = run(model, cur, dt, None, (0, 3) if currents.shape[-1] == 2 else (0,), record,
                                  stride, solver)
            out = jnp.mean((v + 55.0) ** 2) + jnp.mean(final.V)
            return out + (0.0 if ca is None else 1e3 * jnp.mean(ca))

        return jnp.mean(jax.vmap(one)(currents))

    return loss


def _compare(tree_a, tree_b, rtol, atol=0.0):
    la, lb = jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)
    assert len(la) == len(lb) and la
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree_a), lb, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol,
                                   err_msg=jax.tree_util.keystr(path))


CASES = [
    ("circuit", SemiImplicit(), 1), ("circuit", ExponentialEuler(), 3), ("circuit", ExplicitEuler(), 1),
    ("grouped", SemiImplicit(), 2), ("shh_circuit", SemiImplicit(), 1),
]


@pytest.mark.parametrize("kind,solver,stride", CASES)
def test_population_values_and_gradients_match_generic_scan(x64, kind, solver, stride):
    circuit = _circuit(kind == "grouped", "SHH" if kind == "shh_circuit" else "CHH")
    assert _batch_minor_ok(circuit, solver)
    pop = _population(circuit, 3)
    currents = jnp.asarray(_currents(150, 2, 2))
    dt = 0.4 if isinstance(solver, ExplicitEuler) else 0.7
    record = (1, 2, 3)
    results = []
    for run in (_run, _run_scan):
        loss = _loss(run, record, stride, solver, jnp.asarray(dt))
        f = eqx.filter_jit(eqx.filter_vmap(eqx.filter_value_and_grad(loss), in_axes=(eqx.if_array(0), None)))
        results.append(f(pop, currents))
    (l_new, g_new), (l_old, g_old) = results
    _compare(l_new, l_old, rtol=1e-11)
    _compare(g_new, g_old, rtol=1e-8, atol=1e-12)
    assert all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(g_new))  # every leaf is exercised


def test_traces_and_final_state_match_generic_scan_under_nested_vmaps(x64):
    circuit = _circuit(False)
    pop = _population(circuit, 2)
    currents = jnp.asarray(_currents(120, 2, 3))
    solver = SemiImplicit()

    def traces(run):
        def one(model, cur):
            v, ca, cur_out, final = run(model, cur, jnp.asarray(0.5), None, (0, 3), (0, 1, 2, 3), 4, solver)
            return v, ca, cur_out, final

        inner = jax.vmap(one, in_axes=(None, 0))
        return eqx.filter_jit(eqx.filter_vmap(inner, in_axes=(eqx.if_array(0), None)))(pop, currents)

    new, old = traces(_run), traces(_run_scan)
    _compare(new, old, rtol=1e-12)
    assert new[0].shape == (2, 3, 30, 4)


@pytest.mark.parametrize("neuron", [LeakyIntegrate, SimpleHH, CElegansHH])
def test_neuron_modules_gradients_wrt_every_input(x64, neuron):
    """Gradients w.r.t. parameters, current, dt and the initial state, with grad outside and inside vmap."""
    model = neuron.random(jax.random.PRNGKey(3), 2)
    assert _batch_minor_ok(model, SemiImplicit())
    currents = jnp.asarray(_currents(100, 2, 2))
    init = model.init_state()
    init = init._replace(V=init.V + jnp.asarray([3.0, -2.0]))

    def loss(run):
        def f(m, cur, dt, state0):
            v, ca, _, final = run(m, cur, dt, state0, (0, 1), (0, 1), 1, SemiImplicit())
            out = jnp.sum(jnp.sin(v / 10.0)) + jnp.sum(final.V ** 2) / 100.0
            return out if ca is None else out + jnp.sum(ca)

        return f

    argnums = (0, 1, 2, 3)
    for run_in in ("outside", "inside"):
        res = []
        for run in (_run, _run_scan):
            f = loss(run)
            if run_in == "outside":  # grad of a vmapped (over stimuli) loss
                def total(m, cur, dt, s0, f=f):
                    return jnp.sum(jax.vmap(f, in_axes=(None, 0, None, None))(m, cur, dt, s0))

                res.append(jax.jit(jax.grad(total, argnums))(model, currents, jnp.asarray(0.6), init))
            else:  # vmap (over stimuli) of a grad
                g = jax.vmap(jax.grad(f, argnums), in_axes=(None, 0, None, None))
                res.append(jax.jit(g)(model, currents, jnp.asarray(0.6), init))
        _compare(res[0], res[1], rtol=1e-9, atol=1e-12)


def test_vmap_over_dt_and_initial_state(x64):
    model = CElegansHH.default(2)
    cur = jnp.asarray(_currents(80, 2, 1)[0])
    dts = jnp.asarray([0.3, 0.5, 1.0])
    s0 = model.init_state()
    inits = jax.tree.map(lambda x: jnp.stack([x, x + 0.01, x + 0.02]), s0)

    def run(r):
        def one(dt, init):
            return r(model, cur, dt, init, (0, 1), (0, 1), 1, SemiImplicit())[0]

        return jax.jit(jax.vmap(one))(dts, inits)

    _compare(run(_run), run(_run_scan), rtol=1e-12)


def test_population_of_neuron_modules_float32_matches_generic_scan():
    members = [CElegansHH.random(k, 3) for k in jax.random.split(jax.random.PRNGKey(5), 4)]
    pop = stack_models(members)
    currents = jnp.asarray(_currents(200, 3, 2), jnp.float32)

    def run(r):
        def one(m, cur):
            return r(m, cur, jnp.asarray(0.5, jnp.float32), None, (0, 1, 2), (0, 2), 1, SemiImplicit())[:2]

        return eqx.filter_jit(eqx.filter_vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(eqx.if_array(0), None)))(
            pop, currents)

    new, old = run(_run), run(_run_scan)
    assert new[0].dtype == jnp.float32
    _compare(new, old, rtol=2e-5, atol=1e-5)


def test_generic_path_kept_for_models_that_are_not_elementwise():
    from neurosurrogate.surrogates.lstm_neuron import LSTMNeuron

    assert not LSTMNeuron.elementwise
    assert not _batch_minor_ok(CElegansHH.default(), None)
