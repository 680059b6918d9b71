"""Bounds as bijections (fit.transforms) and the parameter space (fit.space)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import CElegansHH, LeakyIntegrate, load_circuit
from neurosurrogate.fit import ParameterSpace, constrain, unconstrain, weighted_mse

INF = np.inf
KINDS = [(0.5, 40.0), (0.5, INF), (-INF, -1.0), (-INF, INF)]


@pytest.mark.parametrize("lower,upper", KINDS)
def test_round_trip_and_range(lower, upper):
    x = jnp.asarray(np.linspace(-30, 30, 41))
    x = jnp.clip(x, lower + 0.01 if np.isfinite(lower) else -INF, upper - 0.01 if np.isfinite(upper) else INF)
    u = unconstrain(x, lower, upper)
    np.testing.assert_allclose(constrain(u, lower, upper), x, rtol=2e-4, atol=2e-4)
    big = constrain(jnp.asarray([-1e4, -50.0, 0.0, 50.0, 1e4]), lower, upper)
    assert bool(jnp.all((big >= lower) & (big <= upper)))


def test_gradients_finite_everywhere_and_mixed_leaf():
    lower = jnp.asarray([0.0, -INF, -INF, 1.0])
    upper = jnp.asarray([1.0, INF, 2.0, INF])
    for u0 in (-100.0, 0.0, 100.0):
        g = jax.grad(lambda u: constrain(u, lower, upper).sum())(jnp.full(4, u0))
        assert bool(jnp.isfinite(g).all())
    # identity where free
    assert float(constrain(jnp.full(4, 3.0), lower, upper)[1]) == 3.0


def test_bad_bounds_message():
    from neurosurrogate.fit.transforms import check_bounds

    with pytest.raises(ValueError, match="lower 2.0 is not below upper 1.0"):
        check_bounds([2.0], [1.0])


def test_space_sample_inside_init_ranges_and_fixed():
    space = ParameterSpace(CElegansHH.default(), fixed=["C_m"])
    assert "C_m" not in space.free_names and space.size == 27
    pop = space.model(space.sample(jax.random.PRNGKey(0), 64))
    for name, s in CElegansHH.PARAMS.items():
        x = np.asarray(getattr(pop, name))
        assert x.shape == (64, 1)
        if name == "C_m":
            assert np.all(x == 20.0)
        else:
            assert x.min() >= s.init[0] - 1e-3 * abs(s.init[0]) - 1e-6 and x.max() <= s.init[1] + 1e-3 * abs(
                s.init[1]
            )


def test_space_errors():
    with pytest.raises(ValueError, match="invalid fixed parameter: got 'C_x'"):
        ParameterSpace(LeakyIntegrate.default(), fixed=["C_x"])
    with pytest.raises(ValueError, match="fixes every parameter"):
        ParameterSpace(LeakyIntegrate.default(), fixed=["C_m", "g_L", "E_L"])
    with pytest.raises(ValueError, match="invalid model"):
        ParameterSpace(object())


def test_circuit_space_counts_thesis_sizes():
    # thesis: 350 free parameters for tap withdrawal with CHH; grouped mode shares the 28 neuron parameters
    tw = ParameterSpace(load_circuit("tap_withdrawal"), g_max=2.0)
    assert tw.size == 350
    i = tw.paths.index("synapses.G")
    assert np.all(tw.upper[i] == 2.0)
    grouped = ParameterSpace(load_circuit("tap_withdrawal", grouped=True))
    assert grouped.size == 350 - 8 * 28
    # excitatory synapses keep E in [-60, 50], inhibitory in [-120, -60]
    e = tw.paths.index("synapses.E")
    pop = tw.model(tw.sample(jax.random.PRNGKey(1), 8))
    exc = load_circuit("tap_withdrawal").synapses.excitatory
    E = np.asarray(pop.synapses.E)
    assert np.all(E[:, exc] >= -60) and np.all(E[:, ~exc] <= -60)
    assert tw.lower[e].shape == exc.shape


def test_weighted_mse_is_thesis_eq_3_20():
    rng = np.random.default_rng(0)
    v, vt, ca, cat = (rng.normal(size=(2, 5, 3)) for _ in range(4))
    w_n = np.array([1.0, 2.0, 0.5])
    got = weighted_mse(v, vt, ca, cat, w_v=1.0, w_ca=3.0, neuron_weights=w_n)
    per_stim = [
        ((w_n * (v[s] - vt[s]) ** 2).sum() + 3.0 * (w_n * (ca[s] - cat[s]) ** 2).sum()) / 15 for s in range(2)
    ]
    np.testing.assert_allclose(got, np.mean(per_stim), rtol=1e-5)


def test_inverted_synapses_keep_their_slope_sign():
    # the six SYNAPSE_inhib2 synapses (scale -6) stay in [-100, -0.1] at init and below -0.1 throughout;
    # rising ones >= 0.1
    circuit = load_circuit("tap_withdrawal")
    tw = ParameterSpace(circuit, g_max=2.0)
    inverted = np.asarray(circuit.synapses.scale) < 0
    assert inverted.sum() == 6 and (~inverted).sum() == 17
    s = tw.paths.index("synapses.scale")
    np.testing.assert_array_equal(tw.upper[s][inverted], -0.1)
    np.testing.assert_array_equal(tw.lower[s][~inverted], 0.1)
    scale = np.asarray(tw.model(tw.sample(jax.random.PRNGKey(2), 64)).synapses.scale)
    assert np.all(scale[:, inverted] <= -0.1) and np.all(scale[:, inverted] >= -100)
    assert np.all(scale[:, ~inverted] >= 0.1) and np.all(scale[:, ~inverted] <= 100)
    # the packaged circuit itself lies in the space: unconstrain -> constrain gives it back
    back = np.asarray(tw.model(tw.unconstrain_model(circuit)).synapses.scale)
    np.testing.assert_allclose(back, np.asarray(circuit.synapses.scale), rtol=1e-5)
