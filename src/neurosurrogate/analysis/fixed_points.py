"""Iterating a recurrent map, its fixed points (Newton with the explicit Jacobian), and their eigenvalues.

For a map u -> F(u, p) with time step dt, a fixed point u* = F(u*, p) with map eigenvalues lambda corresponds to an
equilibrium of the underlying flow with eigenvalues mu = ln(lambda) / dt (seed 003, Sec. 4).

Example:
    >>> traj = iterate_map(net, jnp.array([-60.0, 0.01, 0.18]), -36.0, n_steps=60_000)   # 300 s at dt = 0.005
    >>> u_star, ok = map_fixed_point(net, -36.0, u0)
    >>> mu = ode_eigenvalues_from_map(net, u_star, -36.0, dt=0.005)
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..models.betacell import V_S_RANGE, check_state, check_v_s

__all__ = [
    "iterate_map",
    "map_eigenvalues",
    "map_fixed_point",
    "ode_eigenvalues_from_map",
    "ode_rates",
]

MapFn = Callable[[Array, Array], Array]


def _param(p) -> Array:
    return jnp.reshape(jnp.asarray(p, dtype=jnp.result_type(float)), (-1,))


@eqx.filter_jit
def _iterate(net, u0, p, n_steps: int, record_every: int):
    def inner(u, _):
        return net(u, p), None

    def outer(u, _):
        u, _ = jax.lax.scan(inner, u, None, length=record_every)
        return u, u

    _, out = jax.lax.scan(outer, u0, None, length=n_steps // record_every)
    return jnp.concatenate([u0[None], out], axis=0)


def iterate_map(
    net: MapFn,
    u0: ArrayLike,
    V_S: ArrayLike,
    n_steps: int,
    *,
    record_every: int = 1,
    v_s_range: tuple[float, float] = V_S_RANGE,
) -> Float[Array, "*batch time 3"]:
    """Iterate ``u <- net(u, V_S)`` ``n_steps`` times, vmapped over leading batch axes of ``u0`` and ``V_S``.

    Args:
        net: the map (e.g. a :class:`~neurosurrogate.surrogates.recurrent_map.RecurrentMap`), ``net(u, p) -> u``.
        u0: initial states, shape (..., 3) (V mV, n, S).
        V_S: control parameter(s), mV, shape (...) broadcastable against ``u0[..., 0]``; values outside the training
            range ``v_s_range`` give a warning.
        n_steps: number of map steps (a multiple of ``record_every``).
        record_every: keep every k-th state.

    Returns:
        States (..., 1 + n_steps // record_every, 3), the first being ``u0``.
    """
    u0 = check_state(u0, name="u0")
    check_v_s(V_S, v_range=v_s_range)
    if n_steps < 1 or record_every < 1 or n_steps % record_every:
        raise ValueError(f"n_steps={n_steps}, record_every={record_every}: need positive values, n_steps a multiple")
    u0 = jnp.asarray(u0, dtype=jnp.result_type(float))
    V_S = jnp.broadcast_to(jnp.asarray(V_S, dtype=u0.dtype), u0.shape[:-1])

    def one(u, p):
        return _iterate(net, u, _param(p), n_steps, record_every)

    fn = one
    for _ in range(u0.ndim - 1):
        fn = jax.vmap(fn)
    return fn(u0, V_S)


def map_fixed_point(
    net, V_S, u0: ArrayLike, *, n_iter: int = 50, tol: float | None = None, jacobian: str = "closed_form"
) -> tuple[Float[Array, "3"], Array]:
    """Fixed point u* = F(u*, V_S) of the map by Newton's method on G(u) = F(u) - u.

    Newton runs in the map's standardised coordinates with the explicit Jacobian of eq. 18 (``jacobian="closed_form"``,
    for a RecurrentMap) or with autodiff (``"autodiff"``, any map). Vmappable over ``V_S`` and ``u0``.

    Args:
        net: the map.
        V_S: control parameter, mV (scalar).
        u0: starting state (3,), physical units.
        n_iter: Newton iterations.
        tol: convergence threshold on the standardised residual max |G| (default 1e-10 in float64, 1e-5 in float32).

    Returns:
        ``(u_star, converged)``: the fixed point (3,) in physical units and a boolean flag.
    """
    u0 = check_state(u0, name="u0")
    if jacobian not in ("closed_form", "autodiff"):
        raise ValueError(f"jacobian={jacobian!r}; use 'closed_form' (eq. 18) or 'autodiff'")
    closed = jacobian == "closed_form" and hasattr(net, "jacobian_standardised")
    u_star, res = _newton(net, _param(V_S), jnp.asarray(u0, dtype=jnp.result_type(float)), n_iter, closed)
    if tol is None:
        tol = 1e-10 if u_star.dtype == jnp.float64 else 1e-5
    return u_star, res < tol


@eqx.filter_jit
def _newton(net, p, u0, n_iter: int, closed: bool):
    if hasattr(net, "standardise_state"):
        to_z, from_z = net.standardise_state, net.destandardise_state
        q = net.standardise_param(p)
        step_z = lambda z: net.step_standardised(z, q)
        jac_z = (lambda z: net.jacobian_standardised(z, q)) if closed else jax.jacfwd(step_z)
    else:
        to_z = from_z = lambda x: x
        step_z = lambda z: net(z, p)
        jac_z = jax.jacfwd(step_z)
    if hasattr(net, "increment_standardised"):  # G = F(z) - z without the cancellation of two rounded states
        G_z = lambda z: net.increment_standardised(z, q)
    else:
        G_z = lambda z: step_z(z) - z

    def body(z, _):
        G = G_z(z)
        J = jac_z(z) - jnp.eye(z.shape[0], dtype=z.dtype)
        dz = jnp.linalg.solve(J, -G)
        dz = jnp.where(jnp.all(jnp.isfinite(dz)), dz, jnp.zeros_like(dz))
        return z + dz, None

    z, _ = jax.lax.scan(body, to_z(u0), None, length=n_iter)
    res = jnp.max(jnp.abs(G_z(z)))
    return from_z(z), res


def map_eigenvalues(net, u: ArrayLike, V_S) -> Float[Array, "3"]:
    """Eigenvalues lambda of the map's Jacobian at ``u`` (eq. 18 or autodiff), by decreasing |lambda|."""
    u = check_state(u, name="u")
    p = _param(V_S)
    J = net.jacobian(u, p) if hasattr(net, "jacobian") else jax.jacfwd(lambda x: net(x, p))(u)
    lam = jnp.linalg.eigvals(J)
    return lam[jnp.argsort(-jnp.abs(lam))]


def ode_eigenvalues_from_map(net, u: ArrayLike, V_S, *, dt: float) -> Float[Array, "3"]:
    """ODE eigenvalues mu = ln(lambda) / dt (1/s) from the map eigenvalues at ``u``, by decreasing real part."""
    if dt <= 0:
        raise ValueError(f"dt={dt}; pass the map's positive time step in seconds")
    return ode_rates(map_eigenvalues(net, u, V_S), dt=dt)


def ode_rates(lam: ArrayLike, *, dt: float) -> Array:
    """mu = ln(lambda) / dt (1/s) of one-step map eigenvalues ``lambda`` (any map over dt, e.g. the exact flow's
    expm(J dt)), by decreasing real part; complex128 under ``jax.enable_x64``."""
    lam = jnp.asarray(lam).astype(jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64)
    mu = jnp.log(lam) / dt
    return mu[jnp.argsort(-mu.real)]
