"""The per-variable neural-network recurrent map of seed 003 (eq. 8, 11-15) and its explicit Jacobian (eq. 18).

For each state variable i (V, n, S for the beta cell) a subnetwork computes, in standardised units
(u -> (u - m_u)/s_u, p -> (p - m_p)/s_p, eq. 10),

    h_i = g([u_{not i}, p] [A'_i; B_i] + beta_i)                                # eq. 13
    q_i = f(u_i a_i + alpha_i + h_i)                                            # eq. 14
    u_i(t + dt) = u_i(t) + q_i . b_i + gamma_i                                  # eq. 15 (together: eq. 8)

The standardisation constants live inside the model (not trained: they pass through ``stop_gradient``), so the map
takes and returns physical units. Weights of the three subnetworks are stacked along a leading axis of length D_u.

Example:
    >>> m = RecurrentMap.init(jax.random.PRNGKey(0), n_state=3, n_param=1, n_hidden=100)
    >>> m = m.with_standardisation(m_u, s_u, m_p, s_p)
    >>> u_next = m(jnp.array([-50.0, 0.002, 0.19]), jnp.array([-36.0]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._io import atomic_write_bytes, atomic_write_json
from . import levenberg_marquardt as lm

__all__ = [
    "ACTIVATIONS",
    "MAP_LOSSES",
    "activation_names",
    "activation_spec",
    "RecurrentMap",
    "SUBNETWORK_FIELDS",
    "increment_mse",
    "increment_weights",
    "load_map",
    "map_loss",
    "save_map",
    "sobolev_mse",
    "standardised_mse",
    "refine_map",
    "refine_steps_per_subnetwork",
    "subnetwork_residuals",
]

#: activations selectable by name (f and g of eq. 8) with their derivatives (for eq. 18)
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (jnp.tanh, lambda x: 1.0 - jnp.tanh(x) ** 2),
    "sigmoid": (jax.nn.sigmoid, lambda x: jax.nn.sigmoid(x) * (1.0 - jax.nn.sigmoid(x))),
    "softplus": (jax.nn.softplus, jax.nn.sigmoid),
    "identity": (lambda x: x, jnp.ones_like),
}


def _activation(name: str, arg: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"{arg}={name!r} is not a known activation; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


Activation = str | tuple[str, ...]


def activation_names(spec: Activation, n_state: int, arg: str) -> tuple[str, ...]:
    """One activation name per subnetwork from ``spec``: a name for all, or one name per variable (a tuple, or a
    comma-separated string such as ``"tanh,tanh,identity"``); the paper allows a different f and g per subsystem."""
    names = tuple(x.strip() for x in spec.split(",")) if isinstance(spec, str) else tuple(spec)
    if len(names) == 1:
        names = names * n_state
    if len(names) != n_state:
        raise ValueError(
            f"{arg}={spec!r} names {len(names)} activations for {n_state} state variables; pass one name for all "
            f"or one per variable, e.g. {','.join(['tanh'] * n_state)!r}"
        )
    for name in names:
        _activation(name, arg)
    return names


def activation_spec(names: tuple[str, ...]) -> Activation:
    """The compact form of per-variable activation names: one name if all agree, else the tuple."""
    return names[0] if len(set(names)) == 1 else tuple(names)


def _apply_rows(spec: Activation, x, derivative: bool = False):
    """Apply the activation(s) ``spec`` row-wise to x (D_u, N_h): row i gets subnetwork i's function."""
    k = 1 if derivative else 0
    if isinstance(spec, str):
        return ACTIVATIONS[spec][k](x)
    return jnp.stack([ACTIVATIONS[name][k](x[i]) for i, name in enumerate(spec)])


#: the trainable fields of RecurrentMap, each stacked over the subnetworks along its first axis
SUBNETWORK_FIELDS = ("a", "alpha", "A", "B", "beta", "b", "gamma")


class RecurrentMap(eqx.Module):
    """Recurrent map u(t + dt) = F(u(t), p) built from one subnetwork per state variable (seed 003, eq. 8).

    Attributes:
        a: (D_u, N_h) weights of the own variable u_i (eq. 14).
        alpha: (D_u, N_h) biases of eq. 14.
        A: (D_u, D_u - 1, N_h) weights A'_i of the other variables u_{not i} (eq. 13; the zero row of A_i removed).
        B: (D_u, D_p, N_h) weights of the parameters p (eq. 13).
        beta: (D_u, N_h) biases of eq. 13.
        b: (D_u, N_h) output weights (eq. 15).
        gamma: (D_u,) output biases (eq. 15).
        m_u, s_u: (D_u,) mean and standard deviation of the states (eq. 10), physical units.
        m_p, s_p: (D_p,) mean and standard deviation of the parameters (eq. 10).
        f, g: activations of eq. 14 and eq. 13 (static): one name for every subnetwork, or a tuple with one name per
            state variable (``ACTIVATIONS``).
    """

    a: Float[Array, "u h"]
    alpha: Float[Array, "u h"]
    A: Float[Array, "u um1 h"]
    B: Float[Array, "u p h"]
    beta: Float[Array, "u h"]
    b: Float[Array, "u h"]
    gamma: Float[Array, " u"]
    m_u: Float[Array, " u"]
    s_u: Float[Array, " u"]
    m_p: Float[Array, " p"]
    s_p: Float[Array, " p"]
    f: Activation = eqx.field(static=True, default="tanh")
    g: Activation = eqx.field(static=True, default="tanh")

    @classmethod
    def init(
        cls,
        key,
        *,
        n_state: int = 3,
        n_param: int = 1,
        n_hidden: int = 100,
        f: Activation = "tanh",
        g: Activation = "tanh",
        out_scale: float = 1e-2,
    ) -> RecurrentMap:
        """Random weights (Glorot-normal inputs, small outputs so that the map starts near the identity).

        Args:
            key: a JAX PRNG key.
            n_state: D_u, number of state variables (>= 2).
            n_param: D_p, number of control parameters (>= 1).
            n_hidden: N_h, hidden units per subnetwork.
            f, g: activations of eq. 14 and eq. 13 (see ``ACTIVATIONS``): one name for all subnetworks, or one per
                state variable as a tuple or comma-separated string, e.g. ``f="tanh,tanh,identity"`` (the paper
                allows a different f and g per subsystem).
            out_scale: standard deviation of the output weights b.
        """
        if n_state < 2 or n_param < 1 or n_hidden < 1:
            raise ValueError(
                f"n_state={n_state}, n_param={n_param}, n_hidden={n_hidden}; need n_state >= 2, n_param >= 1, "
                "n_hidden >= 1"
            )
        f = activation_spec(activation_names(f, n_state, "f"))
        g = activation_spec(activation_names(g, n_state, "g"))
        k = jax.random.split(key, 5)
        du, dp, nh = n_state, n_param, n_hidden
        glorot_in = (2.0 / (du - 1 + dp + nh)) ** 0.5
        return cls(
            a=jax.random.normal(k[0], (du, nh)) * (2.0 / (1 + nh)) ** 0.5,
            alpha=jnp.zeros((du, nh)),
            A=jax.random.normal(k[1], (du, du - 1, nh)) * glorot_in,
            B=jax.random.normal(k[2], (du, dp, nh)) * glorot_in,
            beta=jnp.zeros((du, nh)),
            b=jax.random.normal(k[3], (du, nh)) * out_scale,
            gamma=jnp.zeros((du,)),
            m_u=jnp.zeros((du,)),
            s_u=jnp.ones((du,)),
            m_p=jnp.zeros((dp,)),
            s_p=jnp.ones((dp,)),
            f=f,
            g=g,
        )

    @property
    def n_state(self) -> int:
        return self.a.shape[0]

    @property
    def n_param(self) -> int:
        return self.B.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.a.shape[1]

    def with_standardisation(self, m_u, s_u, m_p, s_p) -> RecurrentMap:
        """A copy with the standardisation constants of eq. 10 (physical units) stored inside."""
        arrs = [jnp.asarray(x, dtype=self.a.dtype).reshape(-1) for x in (m_u, s_u, m_p, s_p)]
        if arrs[0].shape != (self.n_state,) or arrs[1].shape != (self.n_state,):
            raise ValueError(f"m_u/s_u need shape ({self.n_state},), got {arrs[0].shape}/{arrs[1].shape}")
        if arrs[2].shape != (self.n_param,) or arrs[3].shape != (self.n_param,):
            raise ValueError(f"m_p/s_p need shape ({self.n_param},), got {arrs[2].shape}/{arrs[3].shape}")
        return eqx.tree_at(lambda m: (m.m_u, m.s_u, m.m_p, m.s_p), self, tuple(arrs))

    # --- standardisation (eq. 10) ----------------------------------------------------------------------------------
    def _stats(self):
        return tuple(jax.lax.stop_gradient(x) for x in (self.m_u, self.s_u, self.m_p, self.s_p))

    def standardise_state(self, u):
        m_u, s_u, _, _ = self._stats()
        return (u - m_u) / s_u

    def destandardise_state(self, z):
        m_u, s_u, _, _ = self._stats()
        return z * s_u + m_u

    def standardise_param(self, p):
        _, _, m_p, s_p = self._stats()
        return (p - m_p) / s_p

    # --- the map -------------------------------------------------------------------------------------------------
    def _others(self, z):
        d = self.n_state
        idx = jnp.array([[j for j in range(d) if j != i] for i in range(d)])  # Sans(u, i), eq. 12
        return z[idx]  # (D_u, D_u - 1)

    def _pre(self, z, q):
        """y_i (pre-activation of eq. 13) and z_i (pre-activation of eq. 14), each (D_u, N_h)."""
        y = jnp.einsum("ij,ijh->ih", self._others(z), self.A) + (q @ self.B) + self.beta  # eq. 13 / eq. 18 y_i
        zz = z[:, None] * self.a + self.alpha + _apply_rows(self.g, y)  # eq. 14 / eq. 18 z_i
        return y, zz

    def increment_standardised(self, z: Float[Array, " u"], q: Float[Array, " p"]) -> Float[Array, " u"]:
        """The increment q_i . b_i + gamma_i of eq. 15 in standardised units (step = z + increment).

        Computed directly, not as ``step - z``: for the slow variable it is ~1e-4 of the state's range and the
        difference of two float32 states would keep only three or four of its digits.
        """
        _, zz = self._pre(z, q)
        return jnp.sum(_apply_rows(self.f, zz) * self.b, axis=-1) + self.gamma  # eq. 15

    def step_standardised(self, z: Float[Array, " u"], q: Float[Array, " p"]) -> Float[Array, " u"]:
        """One step of eq. 8 in standardised units: z = standardised state (D_u,), q = standardised parameters."""
        return z + self.increment_standardised(z, q)  # eq. 15

    def __call__(self, u: Float[Array, " u"], p: Float[Array, " p"]) -> Float[Array, " u"]:
        """One step in physical units: u(t + dt) = F(u(t), p). Shapes (D_u,), (D_p,) -> (D_u,)."""
        z = self.standardise_state(u)
        q = self.standardise_param(jnp.reshape(p, (-1,)))
        return self.destandardise_state(self.step_standardised(z, q))

    def jacobian_standardised(self, z, q) -> Float[Array, "u u"]:
        """Closed-form Jacobian of eq. 18 in standardised units (rows: outputs i, columns: inputs j)."""
        y, zz = self._pre(z, q)
        w = _apply_rows(self.f, zz, derivative=True) * self.b  # Diag f'(z_i) b_i, (D_u, N_h)
        diag = 1.0 + jnp.sum(self.a * w, axis=-1)  # j_ii = 1 + a_i Diag f'(z_i) b_i
        # j_ij = Row(A_i, j) Diag g'(y_i) Diag f'(z_i) b_i; A'_i lacks row i
        off = jnp.einsum(
            "ijh,ih->ij", self.A, _apply_rows(self.g, y, derivative=True) * w
        )  # (D_u, D_u - 1), column k <-> variable others[i, k]
        d = self.n_state
        J = jnp.diag(diag)
        for i in range(d):
            cols = [j for j in range(d) if j != i]
            J = J.at[i, jnp.array(cols)].set(off[i])
        return J

    def subnetwork(self, i: int) -> tuple[jax.Array, ...]:
        """The trainable weights of subnetwork i (a_i, alpha_i, A'_i, B_i, beta_i, b_i, gamma_i of eq. 13-15)."""
        return tuple(getattr(self, name)[i] for name in SUBNETWORK_FIELDS)

    def with_subnetwork(self, i: int, weights) -> RecurrentMap:
        """A copy with subnetwork i's weights replaced (``weights`` as returned by :meth:`subnetwork`)."""
        return eqx.tree_at(
            lambda m: tuple(getattr(m, name) for name in SUBNETWORK_FIELDS),
            self,
            tuple(getattr(self, name).at[i].set(w) for name, w in zip(SUBNETWORK_FIELDS, weights, strict=True)),
        )

    def jacobian(self, u, p) -> Float[Array, "u u"]:
        """Closed-form Jacobian dF/du (eq. 18) in physical units: diag(s_u) J_std diag(1/s_u)."""
        _, s_u, _, _ = self._stats()
        J = self.jacobian_standardised(self.standardise_state(u), self.standardise_param(jnp.reshape(p, (-1,))))
        return J * s_u[:, None] / s_u[None, :]


def standardised_mse(model: RecurrentMap, batch) -> jax.Array:
    """Training loss (eq. 16) on standardised pairs ``(q, z, z_next)`` of shapes (B, D_p), (B, D_u), (B, D_u)."""
    q, z, z_next = batch
    pred = jax.vmap(model.step_standardised)(z, q)
    return jnp.mean((pred - z_next) ** 2)


def increment_weights(du) -> jax.Array:
    """Per-variable weights 1 / var(du_i) of :func:`increment_mse` from the training increments ``du`` (B, D_u)."""
    var = jnp.var(jnp.asarray(du), axis=0)
    if not bool(jnp.all(var > 0)):
        raise ValueError(f"an increment has zero variance ({var}); the data do not move in every variable")
    return 1.0 / var


def increment_mse(weights) -> Callable[[RecurrentMap, tuple], jax.Array]:
    """Training loss on increments, each variable weighted by ``weights`` (normally 1 / var(du_i)).

    The returned ``loss(model, (q, z, du))`` is ``mean_{b,i} w_i (increment_i(z_b, q_b) - du_{b,i})^2`` for standardised
    parameters q (B, D_p), states z (B, D_u) and increments du = z(t + dt) - z(t) (B, D_u). The network is the same
    eq. 8 map; only the weighting changes. With all weights 1 the loss equals :func:`standardised_mse` up to rounding;
    with 1 / var(du_i) every variable's increment counts by its *relative* error, so the slow variable S (increments
    ~100x smaller than V's in standardised units) is no longer neglected.
    """
    w = jax.lax.stop_gradient(jnp.asarray(weights))

    def loss(model: RecurrentMap, batch) -> jax.Array:
        q, z, du = batch
        pred = jax.vmap(model.increment_standardised)(z, q)
        return jnp.mean((pred - du) ** 2 * w)

    return loss


def sobolev_mse(
    weights, jacobian_weight: float = 1.0, hessian_weight: float = 0.0
) -> Callable[[RecurrentMap, tuple], jax.Array]:
    """Derivative-matching ("Sobolev") loss: :func:`increment_mse` plus the squared errors of the increment's first
    (and optionally second) derivatives with respect to the map's inputs w = (z, q), against those of the exact flow.

    ``loss(model, (q, z, du, J[, H]))`` with J (B, D_u, D_u + D_p) and H (B, D_u, D_u + D_p, D_u + D_p) from
    :func:`neurosurrogate.data.betacell.flow_derivatives` is

        mean_{b,i} w_i [(G_i - du_i)^2 + c_1 sum_j (dG_i/dw_j - J_ij)^2 + c_2 sum_jk (d2G_i/dw_jdw_k - H_ijk)^2]

    where G is the map's standardised increment (eq. 15), c_1 = ``jacobian_weight``, c_2 = ``hessian_weight``. The
    network is the same eq. 8 map; the derivatives are those of eq. 18 (autodiff of the same expression). The data
    stay on the attractor, but their derivatives fix how the increment continues off it, toward the fixed point.
    """
    if jacobian_weight < 0 or hessian_weight < 0:
        raise ValueError(f"jacobian_weight={jacobian_weight}, hessian_weight={hessian_weight}; pass values >= 0")
    w = jax.lax.stop_gradient(jnp.asarray(weights))

    def loss(model: RecurrentMap, batch) -> jax.Array:
        q, z, du, jac, *rest = batch
        if hessian_weight > 0 and not rest:
            raise ValueError("hessian_weight > 0 needs the Hessians H in the batch: (q, z, du, J, H)")
        n_u = z.shape[-1]
        x = jnp.concatenate([z, q], axis=-1)

        def inc(xb):
            return model.increment_standardised(xb[:n_u], xb[n_u:])

        err = (jax.vmap(inc)(x) - du) ** 2
        if jacobian_weight > 0:
            err = err + jacobian_weight * jnp.sum((jax.vmap(jax.jacfwd(inc))(x) - jac) ** 2, axis=-1)
        if hessian_weight > 0:
            hess = jax.vmap(jax.jacfwd(jax.jacfwd(inc)))(x)
            err = err + hessian_weight * jnp.sum((hess - rest[0]) ** 2, axis=(-2, -1))
        return jnp.mean(err * w)

    return loss


def subnetwork_residuals(
    i: int, kind: str, weight: float = 1.0, *, jacobian_weight: float = 1.0, hessian_weight: float = 0.0
) -> Callable[..., jax.Array]:
    """Per-sample residuals of subnetwork i under the loss ``kind`` (see ``MAP_LOSSES``), for least-squares solvers.

    ``residual(weights_i, net, q, z, target[, J[, H]])`` for one sample (target: z(t + dt) for ``"state"``, the
    increment du for the others; J, H as in :func:`sobolev_mse`) returns the residuals whose squares, summed over the
    samples and subnetworks, are B x D_u times the loss (``weight`` = w_i of :func:`increment_mse`; 1 for
    ``"state"``). Only subnetwork i's weights are free: each variable's increment depends on its own subnetwork only.
    """
    if kind not in MAP_LOSSES:
        raise ValueError(f"loss={kind!r}; choose one of {list(MAP_LOSSES)}")
    c1 = jacobian_weight if kind == "sobolev" else 0.0
    c2 = hessian_weight if kind == "sobolev" else 0.0

    def residual(weights_i, net: RecurrentMap, q, z, target, *derivs):
        m = net.with_subnetwork(i, weights_i)
        n_u = z.shape[-1]

        def inc(x):
            return m.increment_standardised(x[:n_u], x[n_u:])[i]

        x = jnp.concatenate([z, q])
        r0 = inc(x) + z[i] - target[i] if kind == "state" else inc(x) - target[i]
        parts = [jnp.atleast_1d(r0)]
        if c1 > 0:
            parts.append(c1**0.5 * (jax.grad(inc)(x) - derivs[0][i]))
        if c2 > 0:
            parts.append(c2**0.5 * jnp.ravel(jax.hessian(inc)(x) - derivs[1][i]))
        return weight**0.5 * jnp.concatenate(parts)

    return residual


def refine_map(
    net: RecurrentMap,
    kind: str,
    data: tuple,
    du=None,
    *,
    jacobian_weight: float = 1.0,
    hessian_weight: float = 0.0,
    config=None,
    steps=None,
    checkpoint=None,
    resume: bool = False,
    sample_weight=None,
) -> tuple[RecurrentMap, list]:
    """Refine a trained map by Levenberg-Marquardt, one subnetwork at a time, on the loss ``kind``.

    Args:
        net: the trained map.
        kind, du, jacobian_weight, hessian_weight: the loss, as for :func:`map_loss`.
        data: ``(q, z, target[, J[, H]])`` standardised training pairs, as for the training loss.
        config: a :class:`~neurosurrogate.surrogates.levenberg_marquardt.LMConfig` (steps per subnetwork, chunk,
            damping, progress).
        steps: accepted steps per subnetwork, one number for all or one per variable (e.g. more for the slow S);
            None: ``config.steps``.
        checkpoint: a file: after each subnetwork the map is written there (``save_map``) with a JSON record beside
            it (``<checkpoint>.json``); ``resume=True`` keeps every finished subnetwork whose loss (and its
            derivative weights) and number of pairs match: with the same steps as stored it is reused, with more it
            continues from the stored subnetwork and its damping for the extra steps (one stopped as converged is
            reused as it is), with fewer it is refined again from ``net``; the others are refined from ``net``. Each
            variable's increment depends only on its own subnetwork, so this equals an uninterrupted refinement (up
            to the float32 rounding of a stored subnetwork that is continued).
        sample_weight: optional weights (n,) >= 0 of the pairs: each pair's residuals are scaled by the square root
            of its weight (a weighted sum of squares; None = all 1).

    Returns:
        ``(net, results)``: the refined map and one ``LMResult`` per subnetwork (its ``history`` starts with the
        trained map's mean squared residual).
    """
    config = config or lm.LMConfig()
    if kind == "state":
        weights = np.ones(net.n_state)
    elif du is None:
        raise ValueError(f"loss={kind!r} needs the training increments du to set its weights")
    else:
        weights = np.asarray(increment_weights(du))
    per_net = refine_steps_per_subnetwork(config.steps if steps is None else steps, net.n_state)
    settings = {"loss": kind, "pairs": int(np.shape(data[0])[0])}
    if kind == "sobolev":  # the derivative weights change the residuals, so a refinement under others is not reused
        settings |= {"jacobian_weight": jacobian_weight, "hessian_weight": hessian_weight}
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (settings["pairs"],) or not np.all(np.isfinite(sample_weight) & (sample_weight >= 0)):
            raise ValueError(
                f"sample_weight of shape {sample_weight.shape}; pass one finite weight >= 0 per pair "
                f"({settings['pairs']} pairs)"
            )
        data = (*data, sample_weight)
        settings |= {"sample_weight_sha1": hashlib.sha1(sample_weight.tobytes()).hexdigest()}
    record = Path(f"{checkpoint}.json") if checkpoint is not None else None
    done: list = [None] * net.n_state  # per subnetwork: {"steps", "history", "converged", "damping"} once refined
    partial: list = [None] * net.n_state  # stored refinements with fewer steps than asked for: continued below
    if resume and record is not None and record.exists() and Path(checkpoint).exists():
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings and len(saved.get("done", [])) == net.n_state:
            stored = load_map(checkpoint)
            for i, entry in enumerate(saved["done"]):
                if entry is None or entry["steps"] > per_net[i]:
                    continue
                net = net.with_subnetwork(i, stored.subnetwork(i))
                if entry["steps"] == per_net[i] or entry["converged"]:
                    done[i] = entry
                else:
                    partial[i] = entry
    results: list = [None] * net.n_state
    for i in range(net.n_state):
        if done[i] is not None:
            results[i] = lm.LMResult(None, done[i]["history"], done[i]["converged"], done[i].get("damping"))
            continue
        fn = subnetwork_residuals(
            i, kind, float(weights[i]), jacobian_weight=jacobian_weight, hessian_weight=hessian_weight
        )
        if sample_weight is not None:
            fn = _weighted(fn)
        label = f"{config.label} subnetwork {i + 1}/{net.n_state}"
        run = dataclasses.replace(config, steps=per_net[i], label=label)
        if partial[i] is not None:  # the extra steps, from the stored lambda (records written before it: the default)
            run = dataclasses.replace(
                run, steps=per_net[i] - partial[i]["steps"], damping=partial[i].get("damping") or config.damping
            )
        out = lm.levenberg_marquardt(fn, net.subnetwork(i), data, context=net, config=run)
        if partial[i] is not None:
            out.history = partial[i]["history"] + out.history[1:]
        net = net.with_subnetwork(i, out.params)
        results[i] = out
        done[i] = {"steps": per_net[i], "history": out.history, "converged": out.converged, "damping": out.damping}
        if record is not None:  # the map first, then the record that says which subnetworks it holds refined
            save_map(checkpoint, net)
            atomic_write_json(record, {"settings": settings, "done": done})
    return net, results


def _weighted(residual):
    """``residual`` with a per-sample weight as its last data field: residuals x sqrt(weight)."""

    def weighted(weights_i, net, *sample):
        *fields, w = sample
        return jnp.sqrt(w) * residual(weights_i, net, *fields)

    return weighted


def refine_steps_per_subnetwork(steps, n_state: int) -> list[int]:
    """``steps`` (one count for all subnetworks or one per variable) as a list of ``n_state`` counts >= 0."""
    counts = [steps] * n_state if np.ndim(steps) == 0 else list(steps)
    if len(counts) != n_state or any(int(c) != c or c < 0 for c in counts):
        raise ValueError(
            f"refine steps={steps!r}; pass one count >= 0 or {n_state} counts (one per variable), e.g. 800 or "
            f"{','.join(['800'] * (n_state - 1) + ['1600'])}"
        )
    return [int(c) for c in counts]


#: the training losses of the map: "state" (eq. 16, MSE of the standardised u(t + dt)), "increment" and "sobolev"
MAP_LOSSES = ("state", "increment", "sobolev")


def map_loss(
    kind: str, du=None, *, jacobian_weight: float = 1.0, hessian_weight: float = 0.0
) -> Callable[[RecurrentMap, tuple], jax.Array]:
    """The loss named ``kind`` (see ``MAP_LOSSES``); ``"increment"`` and ``"sobolev"`` need the training increments
    ``du`` to set their per-variable weights."""
    if kind == "state":
        return standardised_mse
    if kind in ("increment", "sobolev"):
        if du is None:
            raise ValueError(f"loss={kind!r} needs the training increments du to set its weights")
        if kind == "increment":
            return increment_mse(increment_weights(du))
        return sobolev_mse(increment_weights(du), jacobian_weight, hessian_weight)
    raise ValueError(f"loss={kind!r}; choose one of {list(MAP_LOSSES)}")


def save_map(path, net: RecurrentMap):
    """Write ``net`` atomically: one JSON header line (sizes, activations) followed by the Equinox leaves."""
    import io

    header = {
        "format": "neurosurrogate-recurrent-map",
        "version": 1,
        "n_state": net.n_state,
        "n_param": net.n_param,
        "n_hidden": net.n_hidden,
        "f": net.f,
        "g": net.g,
        "dtype": str(net.a.dtype),
    }
    buf = io.BytesIO()
    buf.write((json.dumps(header) + "\n").encode())
    eqx.tree_serialise_leaves(buf, net)
    return atomic_write_bytes(path, buf.getvalue())


def load_map(path) -> RecurrentMap:
    """Read a map written by :func:`save_map` (sizes and activations come from the file's header)."""
    with open(path, "rb") as fh:
        first = fh.readline()
        try:
            header = json.loads(first.decode())
            ok = isinstance(header, dict) and header.get("format") == "neurosurrogate-recurrent-map"
        except (UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if not ok:  # a bare Equinox file: assume the paper's sizes (N_h = 100, tanh)
            fh.seek(0)
            header = {"n_state": 3, "n_param": 1, "n_hidden": 100, "f": "tanh", "g": "tanh"}
        template = RecurrentMap.init(
            jax.random.PRNGKey(0),
            n_state=header["n_state"],
            n_param=header["n_param"],
            n_hidden=header["n_hidden"],
            f=tuple(header["f"]) if isinstance(header["f"], list) else header["f"],
            g=tuple(header["g"]) if isinstance(header["g"], list) else header["g"],
        )
        # the stored precision, whatever jax_enable_x64 says now (maps are trained in float32)
        dtype = np.dtype(header.get("dtype", "float32"))
        template = jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, template)
        try:
            return eqx.tree_deserialise_leaves(fh, template)
        except Exception as exc:
            raise ValueError(f"{path} is not a recurrent map written by save_map ({exc}); re-run the training") from exc
