"""The shared surrogate trainer: convergence on a known problem, best-validation model, checkpoint/resume, bad input."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neurosurrogate.surrogates.training import TrainConfig, mse_loss, train


def _linear_problem(n=512):
    x = jax.random.normal(jax.random.PRNGKey(1), (n, 3))
    w = jnp.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
    return x, x @ w + jnp.array([0.1, -0.3])


def test_recovers_linear_map():
    x, y = _linear_problem()
    model = eqx.nn.Linear(3, 2, key=jax.random.PRNGKey(0))
    res = train(
        model, mse_loss, (x, y), optax.adam(3e-2), TrainConfig(epochs=60, batch_size=64, val_fraction=0.2)
    )
    assert res.best_val_loss < 1e-6
    assert np.allclose(res.model.weight.T, [[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], atol=1e-3)
    assert res.history["train_loss"].shape == (60,)
    assert res.best_val_loss == pytest.approx(res.history["val_loss"].min())
    assert res.best_epoch == int(np.argmin(res.history["val_loss"]))


def test_keeps_best_validation_model():
    x, y = _linear_problem()
    model = eqx.nn.Linear(3, 2, key=jax.random.PRNGKey(0))
    # a learning rate that diverges late: the returned model must be the best one, not the last
    sched = optax.piecewise_constant_schedule(3e-2, {200: 1e3})
    res = train(
        model, mse_loss, (x, y), optax.sgd(sched), TrainConfig(epochs=40, batch_size=16, val_fraction=0.25)
    )
    last_val = float(mse_loss(res.last_model, (x, y)))
    best_val = float(mse_loss(res.model, (x, y)))
    assert best_val < last_val or not np.isfinite(last_val)


def test_checkpoint_resume_is_exact(tmp_path):
    x, y = _linear_problem(256)
    model = eqx.nn.Linear(3, 2, key=jax.random.PRNGKey(0))
    opt = optax.adam(1e-2)
    full = train(model, mse_loss, (x, y), opt, TrainConfig(epochs=6, batch_size=32))
    ck = tmp_path / "ckpt.eqx"
    train(
        model, mse_loss, (x, y), opt, TrainConfig(epochs=3, batch_size=32, checkpoint=ck, checkpoint_every=1)
    )
    assert ck.exists() and not list(tmp_path.glob("*.tmp"))
    resumed = train(
        model, mse_loss, (x, y), opt, TrainConfig(epochs=6, batch_size=32, checkpoint=ck, resume=True)
    )
    np.testing.assert_allclose(resumed.history["val_loss"], full.history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(resumed.last_model.weight, full.last_model.weight, rtol=1e-5)


def test_bad_input():
    model = eqx.nn.Linear(3, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="leading length"):
        train(model, mse_loss, (jnp.zeros((10, 3)), jnp.zeros((9, 2))), optax.adam(1e-3))
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_population_trains_each_member_as_alone():
    """A population trained with population_loss follows, member by member, the path of each model trained alone
    (same batches, Adam per parameter), so several seeds can be trained at once."""
    import equinox as eqx

    from neurosurrogate.surrogates.recurrent_map import RecurrentMap, standardised_mse
    from neurosurrogate.surrogates.training import population_loss, population_member

    k = jax.random.split(jax.random.PRNGKey(4), 3)
    q = jax.random.normal(k[0], (300, 1))
    z = jax.random.normal(k[1], (300, 3))
    zn = z + 0.1 * jnp.tanh(z[:, ::-1]) + 0.05 * q
    init = lambda key: RecurrentMap.init(key, n_hidden=8)
    seeds = [3, 7]
    pop = eqx.filter_vmap(init)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    cfg = TrainConfig(epochs=4, batch_size=64, val_fraction=0.0, seed=1)
    opt = optax.adamw(optax.cosine_decay_schedule(1e-2, 16), weight_decay=0.01)
    res_pop = train(pop, population_loss(standardised_mse), (q, z, zn), opt, cfg)
    for i, s in enumerate(seeds):
        # last_model: the best-epoch choice is made on the summed loss, so compare the final parameters
        alone = train(init(jax.random.PRNGKey(s)), standardised_mse, (q, z, zn), opt, cfg).last_model
        member = population_member(res_pop.last_model, i)
        for a, b in zip(jax.tree_util.tree_leaves(member), jax.tree_util.tree_leaves(alone), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
        moved = jax.tree_util.tree_leaves(init(jax.random.PRNGKey(s)))[0]
        assert float(jnp.abs(jax.tree_util.tree_leaves(member)[0] - moved).max()) > 1e-3  # training did move it
