"""Beta-cell ODE: published fixed points/eigenvalues (seed 003, Sec. 2), Diffrax vs scipy Radau, bad input."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from neurosurrogate.models.betacell import BetaCell, check_v_s, eigenvalues, fixed_point, flow_step, solve


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# seed 003, Sec. 2: published fixed points and eigenvalues at V_S = -36
PUBLISHED = {
    "original": ((-49.897, 2.3452e-3, 0.19946), (20.772, 9.0834e-2, -42.884)),
    "modified": ((-50.636, 2.0560e-3, 0.18792), (-0.15927, -19.521, -38.785)),
}


@pytest.mark.parametrize("system", ["original", "modified"])
def test_published_fixed_point_and_eigenvalues(x64, system):
    model = BetaCell.from_name(system)
    u = np.asarray(fixed_point(model, -36.0))
    mu = np.asarray(eigenvalues(model, -36.0))
    fp_pub, mu_pub = PUBLISHED[system]
    for got, want in zip(u, fp_pub, strict=True):
        assert got == pytest.approx(want, rel=1e-4), (got, want)  # 4+ significant digits
    assert np.allclose(mu.imag, 0.0)
    for got, want in zip(mu.real, mu_pub, strict=True):
        assert got == pytest.approx(want, rel=1e-4), (got, want)  # 4+ significant digits
    # it is an equilibrium
    assert np.abs(np.asarray(model.vector_field(0.0, jnp.asarray(u), -36.0))).max() < 1e-8


def test_fixed_point_vmaps_over_v_s(x64):
    model = BetaCell.original()
    vs = jnp.linspace(-40.0, -30.0, 5)
    us = jax.vmap(lambda p: fixed_point(model, p))(vs)
    assert us.shape == (5, 3)
    res = jax.vmap(lambda u, p: model.vector_field(0.0, u, p))(us, vs)
    assert float(jnp.abs(res).max()) < 1e-7


def test_diffrax_matches_scipy_radau(x64):
    model = BetaCell.original()
    u0 = np.array([-60.0, 0.0, 0.18])
    ts = np.linspace(0.0, 3.0, 301)
    ours = np.asarray(solve(model, jnp.asarray(u0), -36.0, jnp.asarray(ts), solver=diffrax.Tsit5()))
    m = model

    def f(t, u):  # the same equations in NumPy (seed 003 eq. 1-7), so that scipy is an independent reference
        V, n, S = u
        sig = lambda x: 1.0 / (1.0 + np.exp(-x))
        i_ion = m.g_Ca * sig((V - m.V_m) / m.theta_m) * (V - m.V_Ca) + m.g_K * n * (V - m.V_K) + m.g_S * S * (V - m.V_K)
        return [
            -i_ion / m.tau,
            m.sigma * (sig((V - m.V_n) / m.theta_n) - n) / m.tau,
            (sig((V + 36.0) / m.theta_S) - S) / m.tau_S,
        ]

    ref = solve_ivp(f, (0.0, 3.0), u0, method="Radau", t_eval=ts, rtol=1e-9, atol=1e-11).y.T
    assert np.abs(ours[:, 0] - ref[:, 0]).max() < 1e-3  # mV
    assert np.abs(ours[:, 1] - ref[:, 1]).max() < 1e-5
    assert np.abs(ours[:, 2] - ref[:, 2]).max() < 1e-7
    # the stiff default solver agrees too, and the solve vmaps over (u0, V_S)
    batch = solve(model, jnp.stack([jnp.asarray(u0)] * 2), jnp.array([-36.0, -33.0]), jnp.asarray(ts[:101]))
    assert batch.shape == (2, 101, 3)
    assert np.abs(np.asarray(batch[0]) - ref[:101]).max() < 1e-3


def test_flow_step_and_its_derivatives_match_the_reference_solve(x64):
    """flow_step (fixed-substep RK4) = the adaptive Diffrax solve over one dt, and its autodiff Jacobian / V_S
    derivative = central finite differences of that reference solve (the targets of derivative-matching training)."""
    model = BetaCell.original()
    u0 = jnp.array([-45.0, 0.02, 0.185])
    ts = jnp.array([0.0, 0.005])

    def ref(u, vs):
        return solve(model, u, vs, ts, rtol=1e-12, atol=1e-14, solver=diffrax.Tsit5())[-1]

    np.testing.assert_allclose(flow_step(model, u0, -36.0, 0.005), ref(u0, -36.0), rtol=1e-10, atol=1e-12)
    J = np.asarray(jax.jacfwd(flow_step, argnums=(1, 2))(model, u0, -36.0, 0.005)[0])
    dJp = np.asarray(jax.jacfwd(flow_step, argnums=2)(model, u0, -36.0, 0.005))
    h = np.array([1e-4, 1e-7, 1e-7])
    for j in range(3):
        e = jnp.zeros(3).at[j].set(h[j])
        fd = (ref(u0 + e, -36.0) - ref(u0 - e, -36.0)) / (2 * h[j])
        np.testing.assert_allclose(J[:, j], fd, rtol=1e-5, atol=1e-9)
    fd_p = (ref(u0, -36.0 + 1e-4) - ref(u0, -36.0 - 1e-4)) / 2e-4
    np.testing.assert_allclose(dJp, fd_p, rtol=1e-5, atol=1e-12)
    assert np.abs(dJp[[0, 2]]).min() > 1e-6  # V_S acts on S directly and on V through S within the step


def test_bad_input():
    model = BetaCell.original()
    with pytest.raises(ValueError, match="shape"):
        solve(model, jnp.zeros(2), -36.0, jnp.linspace(0, 1, 3))
    with pytest.warns(UserWarning, match="outside the range"):
        check_v_s(-45.0)
    with pytest.raises(ValueError, match="outside the range"):
        check_v_s(-45.0, strict=True)
    with pytest.raises(ValueError, match="original"):
        BetaCell.from_name("bistable")
