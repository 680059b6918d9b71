"""Recurrent map of seed 003: eq. 18 Jacobian vs autodiff, fixed points/eigenvalues of maps, data + quick training,
bifurcation helpers, a smoke run of the reproduction and bad input."""

from __future__ import annotations

import dataclasses
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from typer.testing import CliRunner

from neurosurrogate.analysis.bifurcation import (
    _align,
    classify_regime,
    fraction_to_fixed_point,
    stable_interval,
    transition_point,
)
from neurosurrogate.analysis.fixed_points import (
    iterate_map,
    map_eigenvalues,
    map_fixed_point,
    ode_eigenvalues_from_map,
)
from neurosurrogate.data.betacell import (
    MapDataConfig,
    fixed_point_separation,
    flow_derivatives,
    load_map_dataset,
    make_map_dataset,
    pairs_arrays,
    save_map_dataset,
)
from neurosurrogate.models.betacell import BetaCell, fixed_point, flow_step
from neurosurrogate.surrogates.levenberg_marquardt import LMConfig
from neurosurrogate.surrogates.recurrent_map import (
    RecurrentMap,
    increment_mse,
    increment_weights,
    map_loss,
    refine_map,
    sobolev_mse,
    standardised_mse,
    subnetwork_residuals,
)
from neurosurrogate.surrogates.training import TrainConfig, train


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _random_map(key=0, **kw):
    net = RecurrentMap.init(jax.random.PRNGKey(key), n_hidden=16, out_scale=0.3, **kw)
    return net.with_standardisation([-50.0, 0.01, 0.18], [10.0, 0.02, 0.005], [-35.0], [3.0])


@pytest.mark.parametrize(
    "acts", [("tanh", "tanh"), ("sigmoid", "softplus"), ("tanh,sigmoid,identity", ("softplus", "tanh", "identity"))]
)
def test_eq18_jacobian_matches_autodiff(x64, acts):
    net = _random_map(f=acts[0], g=acts[1])
    for k in range(4):
        u = jnp.array([-50.0, 0.01, 0.18]) + jax.random.normal(jax.random.PRNGKey(k), (3,)) * jnp.array(
            [10, 0.02, 0.005]
        )
        p = jnp.array([-36.0 + k])
        J_auto = jax.jacfwd(net)(u, p)
        np.testing.assert_allclose(net.jacobian(u, p), J_auto, rtol=1e-10, atol=1e-12)
        z, q = net.standardise_state(u), net.standardise_param(p)
        np.testing.assert_allclose(
            net.jacobian_standardised(z, q),
            jax.jacfwd(net.step_standardised)(z, q),
            rtol=1e-10,
            atol=1e-12,
        )


def test_map_structure_eq8(x64):
    """u_i(t+dt) depends on u_i through a_i only: zeroing the other-variable weights A'_i of one subnetwork removes
    its dependence on the other variables (the i-th row of A_i is zero by construction)."""
    net = _random_map()
    net0 = net.__class__(**{**net.__dict__, "A": net.A.at[0].set(0.0)})
    J = net0.jacobian(jnp.array([-50.0, 0.01, 0.18]), jnp.array([-36.0]))
    assert float(jnp.abs(J[0, 1:]).max()) == 0.0
    assert float(jnp.abs(J[1:, :]).max()) > 0.0


def test_map_fixed_point_newton_and_eigen_conversion(x64):
    net = _random_map(key=3)
    u0 = jnp.array([-50.0, 0.01, 0.18])
    u_c, ok_c = map_fixed_point(net, -36.0, u0)
    u_a, ok_a = map_fixed_point(net, -36.0, u0, jacobian="autodiff")
    if bool(ok_c):
        np.testing.assert_allclose(net(u_c, jnp.array([-36.0])), u_c, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(u_c, u_a, rtol=1e-8)
    # mu = ln(lambda)/dt recovers the flow's eigenvalues for the exact linear map u -> expm(A dt) u
    A = jnp.array([[-2.0, 1.0, 0.0], [0.0, -0.5, 0.3], [0.1, 0.0, 3.0]])
    dt = 0.005
    M = jnp.asarray(scipy.linalg.expm(np.asarray(A) * dt))
    lin = lambda u, p: M @ u
    ustar, ok = map_fixed_point(lin, -36.0, jnp.array([1.0, 2.0, 3.0]))
    assert bool(ok) and float(jnp.abs(ustar).max()) < 1e-9
    mu = np.sort(np.asarray(ode_eigenvalues_from_map(lin, ustar, -36.0, dt=dt)).real)
    np.testing.assert_allclose(mu, np.sort(np.linalg.eigvals(np.asarray(A)).real), rtol=1e-8)
    assert map_eigenvalues(lin, ustar, -36.0).shape == (3,)


def test_increment_loss_formula(x64):
    """loss='increment' is mean_{b,i} w_i (increment_i - du_i)^2, w_i = 1/var(du_i); weights 1 give the state MSE."""
    net = _random_map(key=5)
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    q = jax.random.normal(k[0], (7, 1))
    z = jax.random.normal(k[1], (7, 3))
    du = jax.random.normal(k[2], (7, 3)) * jnp.array([0.1, 0.3, 0.005])
    w = increment_weights(du)
    np.testing.assert_allclose(w, 1.0 / np.var(np.asarray(du), axis=0), rtol=1e-12)
    expected = 0.0
    for b in range(7):
        inc = np.asarray(net.step_standardised(z[b], q[b]) - z[b])
        expected += float(np.sum(np.asarray(w) * (inc - np.asarray(du[b])) ** 2))
    expected /= 7 * 3
    np.testing.assert_allclose(float(increment_mse(w)(net, (q, z, du))), expected, rtol=1e-10)
    np.testing.assert_allclose(float(map_loss("increment", du)(net, (q, z, du))), expected, rtol=1e-10)
    np.testing.assert_allclose(
        float(increment_mse(jnp.ones(3))(net, (q, z, du))),
        float(standardised_mse(net, (q, z, z + du))),
        rtol=1e-10,
    )
    # the increment is computed directly: step = z + increment
    np.testing.assert_allclose(net.step_standardised(z[0], q[0]), z[0] + net.increment_standardised(z[0], q[0]))
    assert map_loss("state") is standardised_mse
    with pytest.raises(ValueError, match="needs the training increments"):
        map_loss("increment")
    with pytest.raises(ValueError, match="loss='mae'"):
        map_loss("mae")
    with pytest.raises(ValueError, match="zero variance"):
        increment_weights(jnp.zeros((4, 3)))


def test_map_optimiser_weight_decay_only_on_input_weights():
    import equinox as eqx

    from neurosurrogate.experiments.betacell_map import BetaCellMapConfig, map_optimiser

    net = _random_map(key=2)
    params, _ = eqx.partition(net, eqx.is_inexact_array)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    for wd in (0.0, 0.5):
        opt = map_optimiser(1e-2, 10, weight_decay=wd)
        upd, _ = opt.update(zero, opt.init(params), params)
        new = eqx.apply_updates(params, upd)
        for name in ("a", "A", "B"):  # decayed by lr * wd with a zero gradient, untouched without decay
            np.testing.assert_allclose(getattr(new, name), getattr(params, name) * (1 - 1e-2 * wd), rtol=1e-6)
        for name in ("b", "gamma", "alpha", "beta", "m_u", "s_u", "m_p", "s_p"):
            np.testing.assert_array_equal(getattr(new, name), getattr(params, name))
    with pytest.raises(ValueError, match="weight_decay"):
        BetaCellMapConfig(weight_decay=-1.0)
    with pytest.raises(ValueError, match="loss"):
        BetaCellMapConfig(loss="mae")


def test_iterate_map_vmaps_and_rejects_bad_input():
    net = _random_map()
    u0 = jnp.tile(jnp.array([-50.0, 0.01, 0.18]), (4, 1))
    vs = jnp.linspace(-40.0, -30.0, 4)
    traj = iterate_map(net, u0, vs, 20, record_every=5)
    assert traj.shape == (4, 5, 3)
    np.testing.assert_allclose(traj[1, 1], iterate_map(net, u0[1], vs[1], 5)[-1], rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        iterate_map(net, jnp.zeros(2), -36.0, 10)
    with pytest.warns(UserWarning, match="outside the range"):
        iterate_map(net, u0[0], -45.0, 10)
    with pytest.raises(ValueError, match="n_steps"):
        iterate_map(net, u0[0], -36.0, 10, record_every=3)
    with pytest.raises(ValueError, match="m_u"):
        net.with_standardisation([0.0, 0.0], [1.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="activation"):
        RecurrentMap.init(jax.random.PRNGKey(0), f="swish")
    with pytest.raises(ValueError, match="one per variable"):
        RecurrentMap.init(jax.random.PRNGKey(0), f="tanh,identity")


def test_per_variable_activations(x64, tmp_path):
    """f and g may differ per subnetwork (the paper allows it): with f = identity for S the S-subnetwork is affine in
    S (second difference 0) while the tanh subnetworks are not; the activations survive save/load."""
    from neurosurrogate.surrogates.recurrent_map import load_map, save_map

    net = _random_map(key=2, f="tanh,tanh,identity")
    assert net.f == ("tanh", "tanh", "identity") and net.g == "tanh"
    assert _random_map(key=2, f="tanh,tanh,tanh").f == "tanh"  # one name when all agree
    q = jnp.zeros(1)
    z = jnp.array([0.3, -0.2, 0.0])
    e = jnp.array([0.0, 0.0, 1.5])
    second = (
        net.increment_standardised(z + e, q)
        - 2 * net.increment_standardised(z, q)
        + net.increment_standardised(z - e, q)
    )
    assert abs(float(second[2])) < 1e-12  # affine in its own variable
    e0 = jnp.array([1.5, 0.0, 0.0])
    second0 = (
        net.increment_standardised(z + e0, q)
        - 2 * net.increment_standardised(z, q)
        + net.increment_standardised(z - e0, q)
    )
    assert abs(float(second0[0])) > 1e-4  # tanh: curved in V
    save_map(tmp_path / "m.eqx", net)
    back = load_map(tmp_path / "m.eqx")
    assert back.f == net.f
    u = jnp.array([-45.0, 0.02, 0.19])
    np.testing.assert_allclose(back(u, jnp.array([-35.0])), net(u, jnp.array([-35.0])), rtol=1e-12)


def test_a_float32_map_loads_whatever_the_x64_setting(tmp_path):
    from neurosurrogate.surrogates.recurrent_map import load_map, save_map

    net = _random_map(key=1)
    assert net.a.dtype == jnp.float32
    save_map(tmp_path / "m.eqx", net)
    with jax.enable_x64(True):  # e.g. a script that also solves the ODE in float64
        back = load_map(tmp_path / "m.eqx")
    assert back.a.dtype == jnp.float32
    np.testing.assert_array_equal(back.b, net.b)


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory):
    """Six chunks of 6 s (7200 pairs) of the original system, written and read back."""
    ds = make_map_dataset(MapDataConfig(n_chunks=6, chunk_time=6.0, transient=30.0, batch=6, seed=2))
    path = save_map_dataset(ds, tmp_path_factory.mktemp("pairs") / "pairs.zarr")
    return ds, load_map_dataset(path)


def test_dataset_and_quick_training(small_pairs):
    ds, ds2 = small_pairs
    assert ds.sizes["sample"] == 6 * 1200 and ds.attrs["dt"] == 0.005
    # standardised: zero mean and unit variance of u; the V_S are in range
    np.testing.assert_allclose(ds["u"].values.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds["u"].values.std(axis=0), 1.0, atol=1e-4)
    assert ((ds["V_S"].values >= -40) & (ds["V_S"].values <= -30)).all()
    p, u, v = pairs_arrays(ds2)
    # the stored increment is the float64 one: equal to v - u up to float32 rounding of u and v
    _, _, du = pairs_arrays(ds2, target="increment")
    np.testing.assert_allclose(du, v - u, atol=1e-6)
    assert float(jnp.std(du[:, 2])) < 0.05 * float(jnp.std(du[:, 0]))  # S moves slowly
    # Fig. 6 check against brute force: distance from each chunk's ODE fixed point to its points
    sep = fixed_point_separation(ds2)
    assert np.all(np.diff(sep["V_S"]) >= 0) and sep["V_S"].shape == (6,)
    c = int(np.argmin(ds2["V_S"].values))
    with jax.enable_x64(True):
        u_star = np.asarray(fixed_point(BetaCell.original(), float(ds2["V_S"].values[c])))
    pts = ds2["u"].values[ds2["chunk"].values == c] * ds2["s_u"].values + ds2["m_u"].values
    assert sep["min_distance"][0] == pytest.approx(np.linalg.norm(pts - u_star, axis=1).min(), rel=1e-5)
    assert sep["S_star"][0] == pytest.approx(u_star[2], rel=1e-9)
    assert sep["S_headroom"][0] == pytest.approx((pts[:, 2].max() - u_star[2]) / ds2["s_u"].values[2], rel=1e-5)
    assert np.all(sep["min_distance"] > 1e-3)  # the fixed point is never in the data
    net = RecurrentMap.init(jax.random.PRNGKey(0), n_hidden=32)
    net = net.with_standardisation(ds2["m_u"].values, ds2["s_u"].values, ds2["m_p"].values, ds2["s_p"].values)
    n_tr = int(0.9 * p.shape[0])
    rel = {}
    for loss, target in (("state", v), ("increment", du)):
        res = train(
            net,
            map_loss(loss, du[:n_tr]),
            (p[:n_tr], u[:n_tr], target[:n_tr]),
            optax.adam(optax.cosine_decay_schedule(3e-3, 30 * 25)),
            TrainConfig(epochs=30, batch_size=256),
            val_data=(p[n_tr:], u[n_tr:], target[n_tr:]),
        )
        inc = jax.vmap(res.model.increment_standardised)(u[n_tr:], p[n_tr:])
        assert float(jnp.mean((u[n_tr:] + inc - v[n_tr:]) ** 2)) < 3e-4  # state MSE (untrained: ~1e-2)
        rel[loss] = np.asarray(jnp.sqrt(jnp.mean((inc - du[n_tr:]) ** 2, axis=0)) / jnp.std(du[n_tr:], axis=0))
        if loss == "state":
            state_model = res.model
    # the subnetworks have separate weights and Adam normalises each weight's step: re-weighting the variables
    # (1/var(du), ~2700x more weight on S) trains almost the same map (docs/betacell.md, "What did not help")
    np.testing.assert_allclose(rel["increment"], rel["state"], rtol=0.1)
    # the trained map, in physical units, reproduces one ODE step from the data
    k = 100
    u_phys = ds2["u"].values[k] * ds2["s_u"].values + ds2["m_u"].values
    v_phys = ds2["v"].values[k] * ds2["s_u"].values + ds2["m_u"].values
    p_phys = ds2["p"].values[k] * ds2["s_p"].values + ds2["m_p"].values
    pred = np.asarray(state_model(jnp.asarray(u_phys, dtype=jnp.float32), jnp.asarray(p_phys, dtype=jnp.float32)))
    assert abs(pred[0] - v_phys[0]) < 0.5  # mV
    with pytest.raises(ValueError, match="target"):
        pairs_arrays(ds2, target="next")
    with pytest.raises(ValueError, match="dt"):
        MapDataConfig(dt=0.01)


def test_dataset_of_two_parts_keeps_each_parts_chunks_and_standardises_them_together():
    """Attractor chunks plus fast transients (BetaCellMapConfig.fast_chunks): each part's pairs are those it gives
    alone, the chunks are numbered on, and the eq. 10 constants are those of all pairs together."""
    from neurosurrogate.experiments.betacell_map import BetaCellMapConfig, map_data_config

    cfg = BetaCellMapConfig.quick(system="modified", n_chunks=3, chunk_time=1.0, transient=2.0, fast_chunks=4)
    attractor, fast = map_data_config(cfg, 0.005)
    assert (fast.n_chunks, fast.chunk_time, fast.transient, fast.seed) == (4, 0.4, 0.0, cfg.seed + 1)
    attractor, fast = (dataclasses.replace(c, batch=4, max_pairs=None) for c in (attractor, fast))
    both = make_map_dataset([attractor, fast])
    alone = [make_map_dataset(c) for c in (attractor, fast)]
    assert both.sizes["sample"] == 3 * 200 + 4 * 80 and both.attrs["transient"] == [2.0, 0.0]
    np.testing.assert_array_equal(np.unique(both["chunk"].values), np.arange(7))
    np.testing.assert_array_equal(both["V_S"].values, np.concatenate([a["V_S"].values for a in alone]))

    def physical(ds):
        return ds["u"].values.astype(np.float64) * ds["s_u"].values + ds["m_u"].values

    np.testing.assert_allclose(physical(both), np.concatenate([physical(a) for a in alone]), rtol=1e-6, atol=1e-6)
    every = np.concatenate([physical(a) for a in alone])
    np.testing.assert_allclose(both["m_u"].values, every.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(both["s_u"].values, every.std(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="all of one system and dt"):
        make_map_dataset([attractor, dataclasses.replace(fast, system="original")])
    with pytest.raises(ValueError, match="fast_chunks=-1"):
        BetaCellMapConfig.quick(fast_chunks=-1)


def test_fixed_point_part_starts_next_to_u_star_and_keeps_the_cube_parts_constants():
    """The third part (BetaCellMapConfig.fp_chunks, MapDataConfig.start="fixed_point"): every chunk starts within the
    scaled radius of the ODE's fixed point u*(V_S) (Newton, the model's own), no chunk is dropped, its pairs are
    flagged (fixed_point_pairs), and the eq. 10 constants stay those of the attractor part alone."""
    from neurosurrogate.data.betacell import DISTANCE_SCALE, fixed_point_pairs
    from neurosurrogate.experiments.betacell_map import BetaCellMapConfig, map_data_config
    from neurosurrogate.models.betacell import BetaCell, fixed_point

    cfg = BetaCellMapConfig.quick(system="modified", n_chunks=3, chunk_time=1.0, transient=2.0, fp_chunks=6)
    attractor, near = (dataclasses.replace(c, batch=6, max_pairs=None) for c in map_data_config(cfg, 0.005))
    assert (near.start, near.n_chunks, near.transient, near.seed) == ("fixed_point", 6, 0.0, cfg.seed + 2)
    both, alone = make_map_dataset([attractor, near]), make_map_dataset(attractor)
    assert near.min_distance == cfg.fp_radius == 0.3 and near.chunk_time == 0.05
    assert both.sizes["sample"] == 3 * 200 + 6 * 10 and both.attrs["start"] == ["cube", "fixed_point"]
    np.testing.assert_array_equal(fixed_point_pairs(both), np.arange(660) >= 600)
    assert not fixed_point_pairs(alone).any()
    for k in ("m_u", "s_u", "m_p", "s_p"):
        np.testing.assert_array_equal(both[k].values, alone[k].values)
    u = both["u"].values.astype(np.float64) * both["s_u"].values + both["m_u"].values
    first = np.searchsorted(both["chunk"].values, np.arange(3, 9))  # the first pair of each fixed-point chunk
    with jax.enable_x64(True):
        model = BetaCell.from_name("modified")
        u_star = np.asarray(jax.vmap(lambda p: fixed_point(model, p))(jnp.asarray(both["V_S"].values[3:])))
    distance = np.linalg.norm((u[first] - u_star) / DISTANCE_SCALE, axis=1)
    assert np.all(distance <= near.min_distance * (1 + 1e-5)) and distance.max() > 0.1, distance
    with pytest.raises(ValueError, match="add a start='cube' part"):
        make_map_dataset(near)
    with pytest.raises(ValueError, match="start='middle'"):
        dataclasses.replace(near, start="middle")
    with pytest.raises(ValueError, match="fp_chunks=-1"):
        BetaCellMapConfig.quick(fp_chunks=-1)


def test_bifurcation_helpers():
    dt = 0.01
    t = np.arange(0, 20, dt)
    spiking = -50 + 25 * (np.sin(2 * np.pi * t / 0.4) > 0.95)
    bursting = np.where((t % 8) < 3, spiking, -65.0)
    assert classify_regime(spiking, dt) == "spiking"
    assert classify_regime(bursting, dt) == "bursting"
    assert classify_regime(np.full_like(t, -50.0), dt) == "rest"
    v = np.array([-40.0, -36.0, -34.0, -33.0, -30.0])
    assert transition_point(v, ["bursting", "bursting", "bursting", "spiking", "spiking"]) == -33.5
    assert transition_point(v, ["spiking"] * 5) is None
    lo, hi = stable_interval(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, -1.0, -1.0, 1.0]))
    assert (lo, hi) == (0.5, 2.5)
    # alignment: the best window of a shifted periodic record is the previous window itself
    x = np.stack([np.sin(2 * np.pi * t / 3.0) * 10, np.zeros_like(t), np.zeros_like(t)], axis=1)
    prev = x[:500]
    win = _align(x[137:1137], prev, 500, np.array([10.0, 0.01, 0.01]))
    np.testing.assert_allclose(win, prev, atol=1e-9)
    assert fraction_to_fixed_point(np.array([[-50.0, 0.0, 0.2], [-20.0, 0.1, 0.2]]), np.array([-50.0, 0.0, 0.2])) == 0.5


def test_reproduction_smoke_modified(tmp_path):
    from neurosurrogate.experiments.betacell_map import BetaCellMapConfig, run_betacell_map

    cfg = BetaCellMapConfig.quick(
        system="modified",
        n_chunks=4,
        chunk_time=4.0,
        transient=20.0,
        max_pairs=3000,
        n_hidden=8,
        epochs=3,
        n_bif=3,
        bif_transient=1.0,
        bif_window=1.0,
        n_fp=21,
        n_starts=10,
        n_basin=2,
        basin_time=0.5,
        series_time=1.0,
        loss="sobolev",  # the derivative-matching path end to end, second derivatives included
        hessian_weight=1.0,
        fp_chunks=10,  # and the fixed-point stage of the refinement on 50 weighted pairs next to u*
        fp_refine_steps=(0, 0, 2),
        refine_pairs=200,
        fp_refine_pairs=50,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = run_betacell_map(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("metrics.json", "config.json", "report.html", "run.log", "map_dt0.005.eqx"):
        assert (run / name).exists(), name
    for fig in (
        "time_series",
        "attractor_3d",
        "bifurcation",
        "fixed_point_distance",
        "eigenvalues",
        "fixed_point_stability",
        "data_separation",
    ):
        assert (run / "figures" / f"{fig}.png").exists(), fig
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["system"] == "modified" and "stable_interval_ode" in saved
    assert saved["train_dt0.005"]["loss"] == "sobolev" and np.isfinite(saved["val_mse"])
    fp_stage = saved["train_dt0.005"]["fp_refine"]
    assert fp_stage["pairs"] == 200 + 50 and fp_stage["accepted_steps"][:2] == [0, 0]
    assert saved["train_dt0.005"]["refine"] is None
    assert (run / "checkpoint_dt0.005.fp-refine.eqx").exists()
    assert "Levenberg-Marquardt, fixed-point stage" in (run / "report.html").read_text()
    # the fixed point is never in the attractor data (chunks start far from it and settle on the oscillating attractor;
    # the fixed-point part, next to u* by design, is left out of this check)
    assert saved["data_separation"]["min_distance_to_fixed_point"] > 1e-3
    # the ODE's stable interval of the modified system contains V_S = -36 (seed 003, Sec. 2)
    lo, hi = metrics["stable_interval_ode"]
    assert lo == pytest.approx(-37.05, abs=0.05) and hi == pytest.approx(-34.98, abs=0.05)
    # the distance target's misses in metrics.json are those recomputed from fixed_points.json
    from neurosurrogate.experiments.betacell_map import distance_misses_from_run

    again = distance_misses_from_run(run)
    assert again["of"] == 21 and again == saved["fixed_point"]["dt0.005"]["distance_target"]


def test_distance_misses_lists_the_stretches_over_the_target(tmp_path):
    from neurosurrogate.experiments.betacell_map import distance_misses, distance_misses_from_run

    v = np.linspace(-40.0, -39.0, 6)  # -40.0, -39.8, ..., -39.0
    d = np.array([0.02, 0.005, 0.011, 0.013, np.nan, 0.001])
    misses = distance_misses(v, d)
    assert [m["v_s"] for m in misses] == [pytest.approx([-40.0, -40.0]), pytest.approx([-39.6, -39.2])]
    assert misses[0] == {"v_s": misses[0]["v_s"], "distance": [0.02, 0.02]}
    # NaN (no fixed point) is a miss, counted apart from the distance range
    assert misses[1]["distance"] == [0.011, 0.013] and misses[1]["no_fixed_point"] == 1
    assert distance_misses(v[:1], np.array([np.nan])) == [
        {"v_s": [-40.0, -40.0], "distance": None, "no_fixed_point": 1}
    ]
    assert distance_misses(v, np.full(6, 0.01)) == []  # the target itself is within
    with pytest.raises(ValueError, match="two 1-D arrays of one length"):
        distance_misses(v, d[:5])
    with pytest.raises(FileNotFoundError, match="finished `reproduce betacell-map` run"):
        distance_misses_from_run(tmp_path)
    u_ode = np.zeros((6, 3))
    u_map = u_ode + np.array([[0.0, 0.0, x] for x in (0.02, 0.005, 0.011, 0.013, 0.5, 0.001)])
    (tmp_path / "fixed_points.json").write_text(
        json.dumps({"v_s": v.tolist(), "u_ode": u_ode.tolist(), "u_map_dt0.005": u_map.tolist()})
    )
    out = distance_misses_from_run(tmp_path)
    assert out["target"] == 1e-2 and out["within"] == 2 and out["of"] == 6
    assert [m["v_s"] for m in out["misses"]] == [pytest.approx([-40.0, -40.0]), pytest.approx([-39.6, -39.2])]
    assert out["misses"][1]["distance"] == pytest.approx([0.011, 0.5])
    with pytest.raises(KeyError, match="holds dt 0.005"):
        distance_misses_from_run(tmp_path, dt=0.001)


def test_cli_rejects_bad_dt(tmp_path):
    from neurosurrogate.cli import app

    out = tmp_path / "bad"
    res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", "--dt", "0.01", "--out", str(out)])
    assert res.exit_code == 2
    assert "dt=0.01" in res.output
    assert not out.exists()
    bad_f = CliRunner().invoke(
        app, ["reproduce", "betacell-map", "--quick", "--f", "tanh,relu,tanh", "--out", str(out)]
    )
    assert bad_f.exit_code == 2
    assert "relu" in bad_f.output and "choose one of" in bad_f.output
    assert not out.exists()
    for bad_s, message in (("0.2", "pass two numbers"), ("0.25,0.17", "0 <= lo < hi <= 1")):
        res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", "--start-s", bad_s, "--out", str(out)])
        assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
        assert not out.exists()
    bad_data = (("--n-chunks", "n_chunks=0"), ("--chunk-time", "chunk_time=0.001"), ("--transient", "transient=-1.0"))
    fast = ["--fast-chunks", "5", "--fast-chunk-time", "0.001"]
    res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", *fast, "--out", str(out)])
    assert res.exit_code == 2 and "chunk_time=0.001" in " ".join(res.output.split()), res.output
    res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", "--fast-chunks", "-1", "--out", str(out)])
    assert res.exit_code == 2 and "fast_chunks=-1" in " ".join(res.output.split()) and not out.exists(), res.output
    for option, echo in bad_data:
        value = echo.split("=")[1]
        res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", option, value, "--out", str(out)])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and echo in text and "a chunk longer than the time step" in text, res.output
        assert not out.exists()
    for bad_steps, message in (("80O", "one whole number or three"), ("800,800", "pass one count >= 0 or 3")):
        res = CliRunner().invoke(
            app, ["reproduce", "betacell-map", "--quick", "--refine-steps", bad_steps, "--out", str(out)]
        )
        assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
        assert not out.exists()
    no_data = ["--fp-refine-steps", "0,0,5", "--out", str(out)]
    res = CliRunner().invoke(app, ["reproduce", "betacell-map", "--quick", *no_data])
    assert res.exit_code == 2 and "pass fp_chunks > 0" in " ".join(res.output.split()) and not out.exists(), res.output


def test_short_transient_and_wider_start_s_reach_the_fixed_points_s():
    """--transient 2 --start-s 0.17,0.25: the chunks keep S's slow relaxation (tau_S = 35 s), so the data's S range
    reaches above the paper-cube data's, toward the fixed point's S (0.1825 at V_S = -40 to 0.2273 at -30)."""
    from neurosurrogate.data.betacell import START_CUBE, fixed_point_separation, make_map_dataset
    from neurosurrogate.experiments.betacell_map import BetaCellMapConfig, map_data_config

    sizes = dict(n_chunks=6, chunk_time=2.0, max_pairs=None)
    (paper,) = map_data_config(BetaCellMapConfig.quick(transient=40.0, **sizes), 0.005)
    (wide,) = map_data_config(BetaCellMapConfig.quick(transient=2.0, start_s=(0.17, 0.25), **sizes), 0.005)
    assert paper.start_cube == START_CUBE and wide.start_cube[2] == (0.17, 0.25) and wide.transient == 2.0
    s_paper = fixed_point_separation(make_map_dataset(paper))["S_max"]
    s_wide = fixed_point_separation(make_map_dataset(wide))["S_max"]
    assert s_paper.max() < 0.19  # the attractor's S after 40 s
    assert s_wide.max() > 0.195  # still relaxing from starts up to 0.25 (after 2 s, 94 % of the way left)


def test_flow_derivatives_are_the_standardised_flow_derivatives(small_pairs):
    """J and H of flow_derivatives: the exact flow's derivatives in the map's standardised inputs/outputs (eq. 10),
    H consistent with finite differences of J, symmetric in its two input indices."""
    _, ds = small_pairs
    sub = ds.isel(sample=slice(0, 400, 40))
    J, H = flow_derivatives(sub, order=2)
    assert J.shape == (10, 3, 4) and H.shape == (10, 3, 4, 4)
    np.testing.assert_allclose(H, np.swapaxes(H, 2, 3), rtol=1e-4, atol=1e-7)
    s_u, m_u, s_p, m_p = (ds[k].values for k in ("s_u", "m_u", "s_p", "m_p"))
    model = BetaCell.original()
    with jax.enable_x64(True):
        k = 3
        x = sub["u"].values[k].astype(np.float64) * s_u + m_u
        vs = float(sub["p"].values[k, 0]) * s_p[0] + m_p[0]
        Ju, Jp = jax.jacfwd(flow_step, argnums=(1, 2))(model, jnp.asarray(x), vs, 0.005)
        expected = np.concatenate(
            [np.asarray(Ju) * s_u[None, :] / s_u[:, None] - np.eye(3), np.asarray(Jp)[:, None] * s_p[0] / s_u[:, None]],
            axis=1,
        )
    np.testing.assert_allclose(J[k], expected, rtol=1e-4, atol=1e-7)
    # H = dJ/dw by central differences of J (order 1) in each standardised input
    h = 1e-3
    for j in range(4):
        plus, minus = sub.isel(sample=[k]).copy(deep=True), sub.isel(sample=[k]).copy(deep=True)
        name, col = ("u", j) if j < 3 else ("p", 0)
        plus[name].values[0, col] += h
        minus[name].values[0, col] -= h
        fd = (flow_derivatives(plus)[0][0] - flow_derivatives(minus)[0][0]) / (2 * h)
        np.testing.assert_allclose(H[k][:, :, j], fd, rtol=2e-2, atol=2e-5 * np.abs(H[k]).max())
    with pytest.raises(ValueError, match="order=3"):
        flow_derivatives(sub, order=3)


def test_sobolev_loss_formula(x64):
    """loss='sobolev' = increment loss + c1 |dG/dw - J|^2 + c2 |d2G/dw2 - H|^2 (per-variable weights); zero
    derivative terms when J, H are the map's own (eq. 18 Jacobian for the state columns)."""
    net = _random_map(key=7)
    k = jax.random.split(jax.random.PRNGKey(2), 5)
    q = jax.random.normal(k[0], (5, 1))
    z = jax.random.normal(k[1], (5, 3))
    du = jax.random.normal(k[2], (5, 3)) * jnp.array([0.1, 0.3, 0.005])
    J = jax.random.normal(k[3], (5, 3, 4))
    H = jax.random.normal(k[4], (5, 3, 4, 4))
    w = increment_weights(du)
    inc_only = float(increment_mse(w)(net, (q, z, du)))
    np.testing.assert_allclose(float(sobolev_mse(w, 0.0)(net, (q, z, du, J))), inc_only, rtol=1e-12)

    def own(zb, qb):
        f = lambda x: net.increment_standardised(x[:3], x[3:])  # noqa: E731
        x = jnp.concatenate([zb, qb])
        return jax.jacfwd(f)(x), jax.jacfwd(jax.jacfwd(f))(x)

    Jo, Ho = jax.vmap(own)(z, q)
    # the state columns of the autodiff Jacobian are eq. 18's closed form minus the identity
    eq18 = jax.vmap(net.jacobian_standardised)(z, q) - jnp.eye(3)
    np.testing.assert_allclose(Jo[:, :, :3], eq18, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(float(sobolev_mse(w, 2.0, 3.0)(net, (q, z, du, Jo, Ho))), inc_only, rtol=1e-10)
    expected = inc_only + (
        2.0 * np.mean(np.asarray(w) * np.sum((np.asarray(Jo) - np.asarray(J)) ** 2, axis=-1))
        + 3.0 * np.mean(np.asarray(w) * np.sum((np.asarray(Ho) - np.asarray(H)) ** 2, axis=(-2, -1)))
    )
    np.testing.assert_allclose(
        float(map_loss("sobolev", du, jacobian_weight=2.0, hessian_weight=3.0)(net, (q, z, du, J, H))),
        expected,
        rtol=1e-10,
    )
    with pytest.raises(ValueError, match="needs the Hessians"):
        sobolev_mse(w, 1.0, 1.0)(net, (q, z, du, J))
    with pytest.raises(ValueError, match=">= 0"):
        sobolev_mse(w, -1.0)


def test_sobolev_training_learns_the_flow_derivatives(small_pairs):
    """A short derivative-matching fit: the map's increment Jacobian on held-out pairs is several times closer to the
    exact flow's than after the same training with the paper's state MSE, and its state MSE is as good."""
    _, ds = small_pairs
    p, u, v = pairs_arrays(ds)
    du = pairs_arrays(ds, target="increment")[2]
    (J,) = flow_derivatives(ds)
    J = jnp.asarray(J)
    net = RecurrentMap.init(jax.random.PRNGKey(0), n_hidden=32)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    n_tr = int(0.9 * p.shape[0])
    w = np.asarray(increment_weights(du[:n_tr]))
    out = {}
    for loss, data in (("state", (p, u, v)), ("sobolev", (p, u, du, J))):
        res = train(
            net,
            map_loss(loss, du[:n_tr]),
            tuple(x[:n_tr] for x in data),
            optax.adam(optax.cosine_decay_schedule(3e-3, 30 * 25)),
            TrainConfig(epochs=30, batch_size=256),
            val_data=tuple(x[n_tr:] for x in data),
        )
        m = res.model
        inc = jax.vmap(m.increment_standardised)(u[n_tr:], p[n_tr:])
        f = lambda x, m=m: m.increment_standardised(x[:3], x[3:])  # noqa: E731
        Jm = jax.vmap(jax.jacfwd(f))(jnp.concatenate([u[n_tr:], p[n_tr:]], axis=1))
        out[loss] = (
            float(jnp.mean((u[n_tr:] + inc - v[n_tr:]) ** 2)),
            float(np.mean(w * np.sum((np.asarray(Jm) - np.asarray(J[n_tr:])) ** 2, axis=-1))),
        )
    assert out["sobolev"][0] < 3e-4 and out["sobolev"][0] < 2 * out["state"][0]
    assert out["sobolev"][1] < 0.3 * out["state"][1], out


def test_subnetwork_residuals_sum_to_the_training_loss(x64):
    """Squared per-subnetwork residuals, summed over samples and subnetworks, are B x D_u x the loss, for each loss;
    subnetwork weights round-trip and only subnetwork i's weights enter its residuals."""
    net = _random_map(key=3)
    k = jax.random.split(jax.random.PRNGKey(5), 5)
    q, z = jax.random.normal(k[0], (6, 1)), jax.random.normal(k[1], (6, 3))
    du = jax.random.normal(k[2], (6, 3)) * jnp.array([0.1, 0.3, 0.005])
    J, H = jax.random.normal(k[3], (6, 3, 4)), jax.random.normal(k[4], (6, 3, 4, 4))
    w = np.asarray(increment_weights(du))
    cases = {"state": ((q, z, z + du), np.ones(3)), "increment": ((q, z, du), w), "sobolev": ((q, z, du, J, H), w)}
    for kind, (batch, weights) in cases.items():
        total = 0.0
        for i in range(3):
            fn = subnetwork_residuals(i, kind, float(weights[i]), jacobian_weight=2.0, hessian_weight=3.0)
            r = jax.vmap(fn, in_axes=(None, None) + (0,) * len(batch))(net.subnetwork(i), net, *batch)
            total += float(jnp.sum(r**2))
        loss = map_loss(kind, du, jacobian_weight=2.0, hessian_weight=3.0)(net, batch)
        np.testing.assert_allclose(total / (6 * 3), float(loss), rtol=1e-10, err_msg=kind)
    other = _random_map(key=4)
    mixed = net.with_subnetwork(1, other.subnetwork(1))
    for i, src in ((0, net), (1, other), (2, net)):
        for a, b in zip(mixed.subnetwork(i), src.subnetwork(i), strict=True):
            np.testing.assert_array_equal(a, b)
    inc = jax.vmap(mixed.increment_standardised)(z, q)
    np.testing.assert_allclose(inc[:, 1], jax.vmap(other.increment_standardised)(z, q)[:, 1], rtol=1e-12)
    np.testing.assert_allclose(inc[:, [0, 2]], jax.vmap(net.increment_standardised)(z, q)[:, [0, 2]], rtol=1e-12)


def test_levenberg_marquardt_refinement_lowers_held_out_errors(small_pairs):
    """After a short sobolev fit, 40 Levenberg-Marquardt steps per subnetwork lower the held-out increment error of
    every variable 10-300x below where Adam left it."""
    _, ds = small_pairs
    p, u, _ = pairs_arrays(ds)
    du = pairs_arrays(ds, target="increment")[2]
    (J,) = flow_derivatives(ds)
    data = (p, u, du, jnp.asarray(J))
    net = RecurrentMap.init(jax.random.PRNGKey(0), n_hidden=32)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    n_tr = int(0.9 * p.shape[0])
    res = train(
        net,
        map_loss("sobolev", du[:n_tr], jacobian_weight=10.0),
        tuple(x[:n_tr] for x in data),
        optax.adam(optax.cosine_decay_schedule(3e-3, 30 * 25)),
        TrainConfig(epochs=30, batch_size=256),
    )

    def rel_err(m):
        inc = jax.vmap(m.increment_standardised)(u[n_tr:], p[n_tr:])
        return np.asarray(jnp.sqrt(jnp.mean((inc - du[n_tr:]) ** 2, axis=0)) / jnp.std(du[n_tr:], axis=0))

    refined, lm = refine_map(
        res.model, "sobolev", tuple(x[:n_tr] for x in data), du[:n_tr], jacobian_weight=10.0,
        config=LMConfig(steps=40),
    )  # fmt: skip
    before, after = rel_err(res.model), rel_err(refined)
    assert all(r.history[-1] < r.history[0] for r in lm)
    # measured: 0.041 / 0.089 / 0.022 -> 0.00025 / 0.00028 / 0.0023 of each increment's standard deviation
    assert np.all(after < 0.2 * before), (before, after)
    assert np.all(after[:2] < 0.05 * before[:2]), (before, after)
    assert refined.a.dtype == jnp.float32 and refined.f == res.model.f


def test_refinement_checkpoints_and_resumes_after_an_interruption(small_pairs, tmp_path, monkeypatch):
    """An interruption during subnetwork 2 loses only that subnetwork: the resumed refinement equals the
    uninterrupted one exactly."""
    import neurosurrogate.surrogates.levenberg_marquardt as lm_module

    _, ds = small_pairs
    p, u, v = pairs_arrays(ds)
    data = tuple(np.asarray(x[:2000]) for x in (p, u, v))
    net = RecurrentMap.init(jax.random.PRNGKey(1), n_hidden=8)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    cfg = LMConfig(steps=4)
    full, full_res = refine_map(net, "state", data, config=cfg)
    real = lm_module.levenberg_marquardt
    calls = []

    def interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(lm_module, "levenberg_marquardt", interrupted)
    ckpt = tmp_path / "refine.eqx"
    with pytest.raises(KeyboardInterrupt):
        refine_map(net, "state", data, config=cfg, checkpoint=ckpt)
    done = json.loads((tmp_path / "refine.eqx.json").read_text())["done"]
    assert [d is not None for d in done] == [True, False, False]
    calls.clear()
    monkeypatch.setattr(lm_module, "levenberg_marquardt", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed, res = refine_map(net, "state", data, config=cfg, checkpoint=ckpt, resume=True)
    assert len(calls) == 2  # subnetwork 1 came from the checkpoint
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(full), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r.history for r in res] == [r.history for r in full_res]
    # a record written with other settings is not resumed from
    again, _ = refine_map(net, "state", data, config=LMConfig(steps=2), checkpoint=ckpt, resume=True)
    assert not np.array_equal(np.asarray(again.b), np.asarray(full.b))


def test_refinement_steps_per_subnetwork_and_resume_with_more_steps_for_one(small_pairs, tmp_path, monkeypatch):
    """Per-variable step counts; resuming a finished refinement with more steps for S alone runs only S's extra steps,
    from the stored S and its damping, and ends where a fresh refinement with those counts ends."""
    import neurosurrogate.surrogates.levenberg_marquardt as lm_module

    _, ds = small_pairs
    p, u, v = pairs_arrays(ds)
    data = tuple(np.asarray(x[:2000]) for x in (p, u, v))
    net = RecurrentMap.init(jax.random.PRNGKey(2), n_hidden=8)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    ckpt = tmp_path / "refine.eqx"
    _, first = refine_map(net, "state", data, config=LMConfig(), steps=3, checkpoint=ckpt)
    assert [len(r.history) - 1 for r in first] == [3, 3, 3]
    fresh, fresh_res = refine_map(net, "state", data, steps=(3, 3, 6))
    assert [len(r.history) - 1 for r in fresh_res] == [3, 3, 6]
    real, calls = lm_module.levenberg_marquardt, []
    monkeypatch.setattr(lm_module, "levenberg_marquardt", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed, res = refine_map(net, "state", data, steps=(3, 3, 6), checkpoint=ckpt, resume=True)
    assert len(calls) == 1  # V and n came from the checkpoint, S ran 3 more steps
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(fresh), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # S continued from its float32-stored parameters
    assert [r.history for r in res[:2]] == [r.history for r in fresh_res[:2]]
    assert res[2].history[:4] == fresh_res[2].history[:4] and len(res[2].history) == 7
    np.testing.assert_allclose(res[2].history, fresh_res[2].history, rtol=1e-4)
    assert json.loads((tmp_path / "refine.eqx.json").read_text())["done"][2]["steps"] == 6
    # fewer steps than stored: S is refined again from the map given
    calls.clear()
    again, again_res = refine_map(net, "state", data, steps=(3, 3, 2), checkpoint=ckpt, resume=True)
    assert len(calls) == 1 and len(again_res[2].history) == 3
    np.testing.assert_array_equal(again_res[2].history[0], fresh_res[2].history[0])
    # zero steps leaves a subnetwork as trained
    kept, _ = refine_map(net, "state", data, steps=(0, 2, 0))
    np.testing.assert_array_equal(np.asarray(kept.b)[0], np.asarray(net.b)[0])
    assert not np.array_equal(np.asarray(kept.b)[1], np.asarray(net.b)[1])
    for bad in (-1, (3, 3), (1, 2, 1.5)):
        with pytest.raises(ValueError, match="refine steps"):
            refine_map(net, "state", data, steps=bad)


def test_weighted_refinement_equals_repeating_the_weighted_pairs(small_pairs):
    """sample_weight scales each pair's squared residuals: weight 2 on some pairs and 0 on others gives the same
    steps as those pairs twice and the others left out; bad weights are refused."""
    _, ds = small_pairs
    p, u, v = (np.asarray(x[:600]) for x in pairs_arrays(ds))
    net = RecurrentMap.init(jax.random.PRNGKey(4), n_hidden=8)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    weight = np.ones(600)
    weight[:100], weight[500:] = 2.0, 0.0
    weighted, _ = refine_map(net, "state", (p, u, v), steps=(0, 0, 3), sample_weight=weight)
    rows = np.concatenate([np.arange(100), np.arange(500)])
    repeated, _ = refine_map(net, "state", (p[rows], u[rows], v[rows]), steps=(0, 0, 3))
    plain, _ = refine_map(net, "state", (p, u, v), steps=(0, 0, 3))
    np.testing.assert_allclose(np.asarray(weighted.b), np.asarray(repeated.b), rtol=1e-4, atol=1e-7)
    assert np.max(np.abs(np.asarray(weighted.b) - np.asarray(plain.b))) > 1e-4
    for bad in (np.ones(599), -weight, weight * np.nan):
        with pytest.raises(ValueError, match="sample_weight"):
            refine_map(net, "state", (p, u, v), steps=(0, 0, 1), sample_weight=bad)


def test_refinement_is_not_resumed_under_other_derivative_weights(small_pairs, tmp_path, monkeypatch):
    """The sobolev residuals depend on the derivative weights: a record written under other weights is not reused."""
    import neurosurrogate.surrogates.levenberg_marquardt as lm_module

    _, ds = small_pairs
    part = ds.isel(sample=slice(0, 500))
    p, u, _ = pairs_arrays(part)
    du = pairs_arrays(part, target="increment")[2]
    (J,) = flow_derivatives(part)
    data = (np.asarray(p), np.asarray(u), np.asarray(du), J)
    net = RecurrentMap.init(jax.random.PRNGKey(3), n_hidden=8)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    ckpt = tmp_path / "refine.eqx"
    refine_map(net, "sobolev", data, du, jacobian_weight=10.0, steps=1, checkpoint=ckpt)
    real, calls = lm_module.levenberg_marquardt, []
    monkeypatch.setattr(lm_module, "levenberg_marquardt", lambda *a, **k: calls.append(1) or real(*a, **k))
    refine_map(net, "sobolev", data, du, jacobian_weight=10.0, steps=1, checkpoint=ckpt, resume=True)
    assert len(calls) == 0
    refine_map(net, "sobolev", data, du, jacobian_weight=1.0, steps=1, checkpoint=ckpt, resume=True)
    assert len(calls) == 3
