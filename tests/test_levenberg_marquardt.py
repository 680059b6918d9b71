"""Levenberg-Marquardt refinement: against scipy's least_squares on a nonlinear fit, and on a trained recurrent map."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from neurosurrogate.surrogates.levenberg_marquardt import LMConfig, levenberg_marquardt


def _decay_residual(theta, ctx, t, y):
    # y = A exp(-k t) + c, one sample
    return jnp.atleast_1d(theta["A"] * jnp.exp(-theta["k"] * t) + theta["c"] - y)


def test_recovers_exact_parameters_and_matches_scipy():
    t = np.linspace(0.0, 5.0, 200)
    y = 2.5 * np.exp(-1.3 * t) + 0.4
    out = levenberg_marquardt(
        _decay_residual, {"A": 1.0, "k": 0.5, "c": 0.0}, (t, y), config=LMConfig(steps=100, chunk=64)
    )
    ref = scipy.optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * t) + p[2] - y, [1.0, 0.5, 0.0], method="lm")
    got = np.array([float(out.params[k]) for k in ("A", "k", "c")])
    np.testing.assert_allclose(got, [2.5, 1.3, 0.4], rtol=1e-5)
    np.testing.assert_allclose(got, ref.x, rtol=1e-5)
    assert out.history[-1] < 1e-10 * out.history[0]
    assert all(b < a for a, b in zip(out.history[:-1], out.history[1:], strict=True))  # only improving steps are kept


def test_noisy_fit_stops_at_the_least_squares_minimum():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 5.0, 300)
    y = 2.5 * np.exp(-1.3 * t) + 0.4 + 0.01 * rng.standard_normal(t.size)
    out = levenberg_marquardt(_decay_residual, {"A": 1.0, "k": 0.5, "c": 0.0}, (t, y), config=LMConfig(steps=200))
    ref = scipy.optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * t) + p[2] - y, [1.0, 0.5, 0.0], method="lm")
    assert out.converged
    np.testing.assert_allclose([float(out.params[k]) for k in ("A", "k", "c")], ref.x, rtol=1e-5)
    np.testing.assert_allclose(out.history[-1], np.mean(ref.fun**2), rtol=1e-7)


def test_a_run_continued_from_its_damping_retraces_the_uninterrupted_run():
    """lambda is the only state carried between steps: 3 steps, then 4 more from (params, damping), end where 7 do;
    from the default damping instead the second half takes other steps."""
    t = np.linspace(0.0, 5.0, 200)
    y = 2.5 * np.exp(-1.3 * t) + 0.4
    start = {"A": 1.0, "k": 0.5, "c": 0.0}
    full = levenberg_marquardt(_decay_residual, start, (t, y), config=LMConfig(steps=7, damping=1e-2))
    first = levenberg_marquardt(_decay_residual, start, (t, y), config=LMConfig(steps=3, damping=1e-2))
    rest = levenberg_marquardt(_decay_residual, first.params, (t, y), config=LMConfig(steps=4, damping=first.damping))
    # (the parameters come back in float32 between the halves)
    np.testing.assert_allclose(first.history + rest.history[1:], full.history, rtol=1e-4)
    assert full.damping != 1e-2 and first.damping != full.damping
    other = levenberg_marquardt(_decay_residual, first.params, (t, y), config=LMConfig(steps=4, damping=1e-2))
    assert not np.allclose(other.history, rest.history, rtol=1e-3)


def test_bad_input_is_rejected():
    t = np.linspace(0.0, 1.0, 10)
    with pytest.raises(ValueError, match="leading sample axis"):
        levenberg_marquardt(_decay_residual, {"A": 1.0, "k": 0.5, "c": 0.0}, (t, t[:5]))
    with pytest.raises(ValueError, match="not finite"):
        levenberg_marquardt(_decay_residual, {"A": np.nan, "k": 0.5, "c": 0.0}, (t, t))
    with pytest.raises(ValueError, match="damping"):
        LMConfig(damping=0.0)
