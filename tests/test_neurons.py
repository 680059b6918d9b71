"""Neuron models against analytic solutions, convergence order and the thesis' stability claim."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import CElegansHH, ExplicitEuler, ExponentialEuler, LeakyIntegrate, SemiImplicit, SimpleHH, simulate


def li_analytic(t, C, g, E, I, v0):
    """Step response of C dV/dt = I + g (E - V) from V(0) = v0."""
    v_inf = E + I / g
    return v_inf + (v0 - v_inf) * np.exp(-g * t / C)


def test_parameter_counts_and_defaults_inside_bounds():
    assert (len(LeakyIntegrate.PARAMS), len(SimpleHH.PARAMS), len(CElegansHH.PARAMS)) == (3, 11, 28)
    for cls in (LeakyIntegrate, SimpleHH, CElegansHH):
        model = cls.default(3)
        lower, upper = model.bounds()
        for name, spec in cls.PARAMS.items():
            value = np.asarray(getattr(model, name))
            assert value.shape == (3,)
            assert np.all(value == np.float32(spec.default))
            assert np.all(lower[name] <= value) and np.all(value <= upper[name])
    # thesis table 4.1 / reference values
    chh = CElegansHH.default()
    assert float(chh.C_m[0]) == 20.0 and float(chh.g_Ca[0]) == 3.0 and float(chh.rho_Ca[0]) == pytest.approx(0.23)


def test_random_population_draws_inside_init_ranges():
    import jax

    pop = CElegansHH.random(jax.random.PRNGKey(0), n=2, population=200)
    for name, spec in CElegansHH.PARAMS.items():
        v = np.asarray(getattr(pop, name))
        assert v.shape == (200, 2)
        lo, hi = spec.init
        assert v.min() >= lo - 1e-6 * abs(lo) and v.max() <= hi + 1e-6 * abs(hi)
        if hi > lo:
            assert v.std() > 0.2 * (hi - lo) / np.sqrt(12)  # actually spread, roughly uniform


def test_leaky_integrate_step_response_matches_analytic(x64):
    C, g, E, I, dt = 1.0, 0.1, -60.0, 10.0, 0.5
    steps = 400
    model = LeakyIntegrate.default(1)
    traj = simulate(model, jnp.full(steps, I), dt=dt, solver=ExponentialEuler())
    t = np.arange(steps) * dt
    expected = li_analytic(t, C, g, E, I, -60.0)
    np.testing.assert_allclose(np.asarray(traj.V[:, 0]), expected, rtol=1e-6)
    assert traj.V.dtype == jnp.float64


def test_leaky_integrate_semi_implicit_converges_first_order(x64):
    model = LeakyIntegrate.default(1)
    errors, dts = [], [1.0, 0.5, 0.25, 0.125]
    for dt in dts:
        steps = int(round(50.0 / dt))
        v = np.asarray(simulate(model, jnp.full(steps, 10.0), dt=dt).V[:, 0])
        errors.append(np.max(np.abs(v - li_analytic(np.arange(steps) * dt, 1.0, 0.1, -60.0, 10.0, -60.0))))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1, (errors, slope)


def _chh_run(dt, duration=200.0, solver=SemiImplicit()):
    steps = int(round(duration / dt))
    t = np.arange(steps) * dt
    current = 10.0 * ((t >= 20.0) & (t < 150.0))
    traj = simulate(CElegansHH.default(), current, dt=dt, solver=solver)
    return t, np.asarray(traj.V[:, 0]), np.asarray(traj.Ca[:, 0])


def test_chh_semi_implicit_converges_first_order_against_fine_reference(x64):
    ref_dt = 0.001
    _, v_ref, _ = _chh_run(ref_dt)
    dts = [0.4, 0.2, 0.1, 0.05]
    errors = []
    for dt in dts:
        _, v, _ = _chh_run(dt)
        stride = int(round(dt / ref_dt))
        errors.append(np.max(np.abs(v - v_ref[::stride][: len(v)])))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert 0.85 < slope < 1.15, (errors, slope)
    assert errors[-1] < errors[0] / 6


def test_chh_semi_implicit_bounded_where_explicit_euler_diverges():
    # thesis fig. 3.11: dt = 340 ms (the calcium-imaging sampling interval)
    _, v_semi, ca_semi = _chh_run(340.0, duration=340.0 * 30)
    assert np.isfinite(v_semi).all() and np.isfinite(ca_semi).all()
    assert np.abs(v_semi).max() < 100.0
    _, v_expl, _ = _chh_run(340.0, duration=340.0 * 30, solver=ExplicitEuler())
    assert (not np.isfinite(v_expl).all()) or np.abs(v_expl).max() > 1e3


def test_chh_responds_to_current_with_calcium_influx():
    t, v, ca = _chh_run(0.5)
    rest, driven = v[t < 20].mean(), v[(t > 100) & (t < 150)].mean()
    assert driven > rest + 10.0  # a 10 uA/cm2 step depolarises by tens of mV
    assert ca[(t > 100) & (t < 150)].mean() > 100 * ca[0]
