"""Population Adam: schedule, recovery of known parameters, NaN re-draws, atomic checkpoints and exact resume."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurosurrogate import LeakyIntegrate, simulate_population, stack_models
from neurosurrogate.fit import FitProblem, FitSettings, Measurements, ParameterSpace, fit_population


def _li_problem(noise=0.0):
    dt, t = 1.0, np.arange(400) * 1.0
    cur = np.stack([10 * ((t > 50) & (t < 200)) + 20 * ((t > 250) & (t < 330)), 15 * ((t > 100) & (t < 300))])
    cur = cur[..., None]
    target = LeakyIntegrate.default()
    v = np.asarray(simulate_population(stack_models([target]), cur, dt=dt).V[0])
    v = v + np.random.default_rng(0).normal(0, noise, v.shape) if noise else v
    data = Measurements(cur, v)
    return FitProblem(ParameterSpace(LeakyIntegrate.default()), data, data, dt=dt)


def test_staircase_schedule():
    s = FitSettings(lr=1.0, decay=0.92)
    sched = __import__("optax").exponential_decay(s.lr, s.decay_every, s.decay, staircase=True)
    assert (
        float(sched(8)) == 1.0
        and abs(float(sched(9)) - 0.92) < 1e-7
        and abs(float(sched(20)) - 0.92**2) < 1e-7
    )


def test_settings_errors():
    with pytest.raises(ValueError, match="invalid population"):
        FitSettings(population=0)
    with pytest.raises(ValueError, match="invalid decay"):
        FitSettings(decay=1.5)


def test_relative_steps_move_each_parameter_by_a_fraction_of_its_range():
    from neurosurrogate.fit.transforms import constrain, unconstrain

    space = ParameterSpace(LeakyIntegrate.default())
    scales = space.step_scales()
    # C_m: lower bound 0.5, init [0.5, 40] -> softplus; E_L free, init [-70, -45] -> the width itself (0.98 * 25)
    lo, hi = 0.5 + 0.01 * 39.5, 40 - 0.01 * 39.5
    expected_c = float(unconstrain(jnp.asarray(hi), 0.5, jnp.inf) - unconstrain(jnp.asarray(lo), 0.5, jnp.inf))
    names = space.free_names
    np.testing.assert_allclose(float(scales[names.index("C_m")][0]), expected_c, rtol=1e-5)
    np.testing.assert_allclose(float(scales[names.index("E_L")][0]), 0.98 * 25, rtol=1e-6)
    # Adam's first step is lr * sign(gradient) per element; relative steps multiply it by the widths
    settings = FitSettings(lr=0.01, relative_steps=True)
    opt = settings.optimizer(scales)
    u = space.unconstrain_model(LeakyIntegrate.default())
    grads = tuple(jnp.full_like(x, g) for x, g in zip(u, (0.3, -2.0, 1e-3), strict=True))
    updates, _ = opt.update(grads, opt.init(u), u)
    for upd, g, w in zip(updates, grads, scales, strict=True):
        np.testing.assert_allclose(np.asarray(upd), -0.01 * np.sign(np.asarray(g)) * np.asarray(w), rtol=1e-4)
    assert float(constrain(u[0] + updates[0], 0.5, jnp.inf)[0]) != float(constrain(u[0], 0.5, jnp.inf)[0])
    with pytest.raises(ValueError, match="step_scales"):
        settings.optimizer()


def test_screen_keeps_the_best_candidates():
    from neurosurrogate.fit.population import evaluate, initial_population

    problem = _li_problem()
    key = jax.random.PRNGKey(4)
    settings = FitSettings(population=8, screen=40)
    kept = evaluate(problem, initial_population(problem, settings, key), "train")
    everyone = evaluate(problem, problem.space.sample(key, 40), "train")
    np.testing.assert_allclose(np.sort(kept), np.sort(everyone)[:8], rtol=1e-6)
    assert kept.max() < np.median(everyone)
    # no screening: the plain draw of the population
    plain = initial_population(problem, FitSettings(population=8), key)
    np.testing.assert_array_equal(np.asarray(plain[0]), np.asarray(problem.space.sample(key, 8)[0]))
    with pytest.raises(ValueError, match="invalid screen"):
        FitSettings(population=8, screen=4)


def test_li_recovers_parameters():
    problem = _li_problem(noise=0.5)
    result = fit_population(
        problem, FitSettings(population=24, iterations=300, checkpoint_every=0), progress=False
    )
    best = result.best_parameters()
    assert (
        abs(best["C_m"][0] - 1.0) < 0.03
        and abs(best["g_L"][0] - 0.1) < 0.003
        and abs(best["E_L"][0] + 60) < 0.6
    )
    assert result.train_history.shape == (300, 24)


def test_nan_member_is_redrawn_without_stopping_others():
    problem = _li_problem()
    space = problem.space
    u = [np.array(x) for x in space.sample(jax.random.PRNGKey(3), 6)]
    u[0][2] = np.nan  # member 2 starts with a NaN capacitance
    result = fit_population(
        problem,
        FitSettings(population=6, iterations=10, checkpoint_every=0),
        progress=False,
        init_u=[jnp.asarray(x) for x in u],
    )
    assert result.redraws.tolist() == [0, 0, 1, 0, 0, 0]
    assert (
        np.isnan(result.train_history[0, 2]) and np.isfinite(result.train_history[0, [0, 1, 3, 4, 5]]).all()
    )
    assert np.isfinite(result.train_loss).all()


def _interrupt_and_resume(problem, settings, checkpoint, *, at, full):
    """Run ``settings`` until a KeyboardInterrupt at iteration ``at``, resume from ``checkpoint``, and check the final
    parameters equal those of the uninterrupted run ``full``."""

    def interrupt(it, losses):
        if it == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_population(problem, settings, checkpoint=checkpoint, progress=False, callback=interrupt)
    resumed = fit_population(problem, settings, checkpoint=checkpoint, resume=True, progress=False)
    for a, b in zip(full.u, resumed.u, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return resumed


def test_resume_is_exact(tmp_path):
    problem = _li_problem()
    settings = FitSettings(population=5, iterations=20, checkpoint_every=5, seed=7)
    full = fit_population(problem, settings, checkpoint=tmp_path / "a.npz", progress=False)

    resumed = _interrupt_and_resume(problem, settings, tmp_path / "b.npz", at=12, full=full)
    assert resumed.resumed_from == 10
    np.testing.assert_array_equal(full.train_history, resumed.train_history)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    # a checkpoint of other settings is refused with a clear message
    with pytest.raises(ValueError, match="invalid checkpoint"):
        fit_population(
            problem,
            FitSettings(population=5, iterations=21, checkpoint_every=5, seed=7),
            checkpoint=tmp_path / "b.npz",
            resume=True,
            progress=False,
        )


def test_problem_shape_errors():
    problem = _li_problem()
    bad = Measurements(problem.train.currents, problem.train.V[:, :10])
    with pytest.raises(ValueError, match="invalid train targets"):
        FitProblem(problem.space, bad, dt=1.0).check()
    with pytest.raises(ValueError, match="invalid V shape"):
        Measurements(problem.train.currents, problem.train.V[0])


_SHARD_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import neurosurrogate
assert neurosurrogate.use_host_devices(2)
import jax, numpy as np
from neurosurrogate.fit import FitSettings, fit_population
from neurosurrogate.fit.report import fit_metrics
from test_fit_population import _li_problem
assert jax.device_count() == 2
problem = _li_problem()
kw = dict(population=6, iterations=15, seed=3, checkpoint_every=5)
plain = fit_population(problem, FitSettings(**kw), progress=False)
split = fit_population(problem, FitSettings(**kw, shard=True), progress=False)
assert len(split.u[0].sharding.device_set) == 2 and len(plain.u[0].sharding.device_set) == 1
for a, b in zip(plain.u, split.u):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(plain.train_history, split.train_history, rtol=1e-5)
assert fit_metrics(split)["devices"] == 2 and fit_metrics(plain)["devices"] == 1
# a one-device checkpoint resumes on two devices (the layout is not part of the checkpoint's fingerprint)
ckpt = {ckpt!r}
def stop(it, losses):
    if it == 7:
        raise KeyboardInterrupt
try:
    fit_population(problem, FitSettings(**kw), checkpoint=ckpt, progress=False, callback=stop)
except KeyboardInterrupt:
    pass
resumed = fit_population(problem, FitSettings(**kw, shard=True), checkpoint=ckpt, resume=True, progress=False)
assert resumed.resumed_from == 5
for a, b in zip(plain.u, resumed.u):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
print("OK")
"""


def test_sharded_population_matches_single_device(tmp_path):
    """--shard splits the members over two CPU devices (own process: XLA reads the device count at start-up) and
    gives the single-device result."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "shard.py"
    script.write_text(_SHARD_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(tmp_path / "c.npz")))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_use_host_devices_after_start_warns(monkeypatch):
    from neurosurrogate import use_host_devices

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    jax.devices()  # JAX has started
    with pytest.warns(UserWarning, match="no effect"):
        assert use_host_devices(2) is False
    with pytest.raises(ValueError, match="invalid n"):
        use_host_devices(0)


def test_stalled_members_criterion():
    from neurosurrogate.fit.population import stalled_members

    s = FitSettings(population=4, iterations=100, restart_above=0.5, restart_window=10)
    h = np.full((100, 4), np.nan)
    h[:30] = np.array([2.0, 2.0, 0.4, 2.0])  # flat: 0 and 1 stall above 0.5; 2 is below; 3 was drawn recently
    h[:30, 1] = np.linspace(3.0, 1.0, 30)  # member 1 still falls by > 10 % per 10 iterations
    drawn = np.array([0, 0, 0, 25])
    assert stalled_members(h, 30, drawn, s).tolist() == [True, False, False, False]
    assert not stalled_members(h, 30, drawn, dataclasses.replace(s, restart_above=None)).any()
    assert not stalled_members(h, 71, drawn, s).any()  # only in the first 70 % of the iterations
    assert not stalled_members(h, 10, drawn, s).any()  # not before one window has passed
    with pytest.raises(ValueError, match="invalid restart_above"):
        FitSettings(restart_above=-1.0)


def test_restarts_redraw_stalled_members_and_resume_exactly(tmp_path):
    problem = _li_problem()
    # lr so small that nothing moves: every member stalls and is re-drawn in steps 3 and 7 (new losses from 4 and 8)
    settings = FitSettings(population=3, iterations=10, lr=1e-9, restart_above=1e-3, restart_window=2,
                           checkpoint_every=2, seed=1)
    full = fit_population(problem, settings, checkpoint=tmp_path / "a.npz", progress=False)
    assert full.restarts.tolist() == [2, 2, 2] and full.redraws.tolist() == [0, 0, 0]
    assert np.isfinite(full.train_history).all()
    changed = np.abs(np.diff(full.train_history, axis=0)) > 0
    assert changed[3].all() and changed[7].all() and not changed[[0, 1, 2, 4, 5, 6, 8]].any()

    resumed = _interrupt_and_resume(problem, settings, tmp_path / "b.npz", at=5, full=full)
    assert resumed.resumed_from == 4 and resumed.restarts.tolist() == [2, 2, 2]
