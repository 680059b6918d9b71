"""Parameter bounds as bijections between an unconstrained space and the feasible box (no clipping).

For every scalar parameter with bounds [lower, upper]:

- both finite: x = lower + (upper - lower) * sigmoid(u)
- only the lower bound finite: x = lower + softplus(u)
- only the upper bound finite: x = upper - softplus(-u)
- free: x = u

The optimiser works on ``u``; gradients never vanish at a bound the way they do after ODYNN's projection (clipping).
Bounds are arrays of the same shape as the parameter, so one leaf may mix the four kinds (e.g. the reversal potential
of excitatory and inhibitory synapses).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: values are kept this far (relative to the width) inside a two-sided box when mapped back to u
_EDGE = 1e-6


def _kinds(lower, upper):
    lo_fin = jnp.isfinite(lower)
    hi_fin = jnp.isfinite(upper)
    return lo_fin & hi_fin, lo_fin & ~hi_fin, ~lo_fin & hi_fin


def _prepare(like, lower, upper):
    """Bounds broadcast to ``like``: the masks of :func:`_kinds`, finite stand-ins for infinite bounds (harmless
    numbers in the branches that do not use them, so gradients stay NaN-free) and the box width."""
    lower = jnp.broadcast_to(jnp.asarray(lower, like.dtype), like.shape)
    upper = jnp.broadcast_to(jnp.asarray(upper, like.dtype), like.shape)
    box, low_only, up_only = _kinds(lower, upper)
    lo = jnp.where(jnp.isfinite(lower), lower, 0.0)
    hi = jnp.where(jnp.isfinite(upper), upper, 1.0)
    return box, low_only, up_only, lo, hi, jnp.where(box, hi - lo, 1.0)


def constrain(u, lower, upper):
    """Map unconstrained values ``u`` into [lower, upper] (elementwise, bounds broadcast to ``u``).

    Args:
        u: unconstrained values (any shape).
        lower: lower bounds (``-inf`` when free), broadcastable to ``u``.
        upper: upper bounds (``inf`` when free), broadcastable to ``u``.

    Returns:
        The constrained values, same shape as ``u``.

    Example:
        >>> float(constrain(jnp.asarray(0.0), 0.0, 2.0))
        1.0
    """
    u = jnp.asarray(u)
    box, low_only, up_only, lo, hi, width = _prepare(u, lower, upper)
    x_box = lo + width * jax.nn.sigmoid(u)
    x_low = lo + jax.nn.softplus(u)
    x_up = hi - jax.nn.softplus(-u)
    return jnp.where(box, x_box, jnp.where(low_only, x_low, jnp.where(up_only, x_up, u)))


def _softplus_inverse(y):
    # log(exp(y) - 1) computed stably: y + log(1 - exp(-y))
    y = jnp.maximum(y, 1e-12)
    return y + jnp.log(-jnp.expm1(-y))


def unconstrain(x, lower, upper):
    """Inverse of :func:`constrain` (values on or outside a bound are moved just inside it).

    Args:
        x: constrained values.
        lower, upper: bounds as in :func:`constrain`.

    Returns:
        u such that ``constrain(u, lower, upper) == x`` (up to rounding).
    """
    x = jnp.asarray(x)
    box, low_only, up_only, lo, hi, width = _prepare(x, lower, upper)
    frac = jnp.clip((x - lo) / width, _EDGE, 1.0 - _EDGE)
    u_box = jnp.log(frac) - jnp.log1p(-frac)
    u_low = _softplus_inverse(x - lo)
    u_up = -_softplus_inverse(hi - x)
    return jnp.where(box, u_box, jnp.where(low_only, u_low, jnp.where(up_only, u_up, x)))


def check_bounds(lower, upper, name: str = "bounds") -> None:
    """Raise a ValueError when some lower bound is not strictly below its upper bound."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    bad = ~(lower < upper)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise ValueError(
            f"invalid {name}: lower {lower[tuple(i)]} is not below upper {upper[tuple(i)]} at index {tuple(i)}. "
            "Give every parameter an interval with lower < upper (use -inf/inf for free parameters)"
        )
