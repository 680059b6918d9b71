"""Levenberg-Marquardt refinement of a trained surrogate: damped full-batch Gauss-Newton steps on per-sample residuals.

Adam on mini-batches stalls once the residuals are small and the loss surface is badly conditioned: the recurrent map
of seed 003 fits its slow variable's increment to ~0.5 % after hundreds of epochs and barely moves after that.
Gauss-Newton uses the curvature J^T J of the residuals, so a few hundred damped steps on a few hundred parameters go
further than thousands of epochs. Each step solves

    (J^T J + lambda max(diag J^T J) I) delta = J^T r,     params <- params - delta

with J^T J and J^T r summed over chunks of samples (memory stays at chunk x residuals x parameters), all in float64
(J^T J of a neural network has a condition number far beyond float32). A step that lowers the sum of squared residuals
is kept and lambda shrinks by up to 3x, by how well the linearised residuals predicted the decrease (Nielsen's rule);
otherwise lambda grows (2x, 4x, 8x, ... in a row) and the step is retried. Damping is scaled by the largest
diagonal entry, not per parameter (Marquardt's diag(J^T J)): hidden units that barely contribute have near-zero
diagonal entries, and per-parameter damping lets their steps explode.

Example:
    >>> def residual(theta, ctx, x, y):             # one sample -> its residuals
    ...     return jnp.atleast_1d(theta["a"] * jnp.exp(theta["b"] * x) - y)
    >>> out = levenberg_marquardt(residual, {"a": 1.0, "b": 0.0}, (xs, ys), config=LMConfig(steps=50))
    >>> out.params, out.history[-1]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["LMConfig", "LMResult", "levenberg_marquardt"]


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Settings of :func:`levenberg_marquardt`.

    Attributes:
        steps: accepted Gauss-Newton steps (a rejected trial costs one extra pass over the data, no new J^T J).
        chunk: samples per chunk when summing J^T J and J^T r.
        damping: initial lambda, relative to the largest diagonal entry of J^T J.
        max_damping: stop (converged) when no step with lambda up to this lowers the residuals.
        progress: show a Rich progress bar.
        label: the progress bar's label.
    """

    steps: int = 100
    chunk: int = 2000
    damping: float = 1e-6
    max_damping: float = 1e2
    progress: bool = False
    label: str = "refine"

    def __post_init__(self):
        if self.steps < 0 or self.chunk < 1:
            raise ValueError(f"steps={self.steps}, chunk={self.chunk}; pass steps >= 0 and chunk >= 1")
        if not 0.0 < self.damping <= self.max_damping:
            raise ValueError(
                f"damping={self.damping}, max_damping={self.max_damping}; pass 0 < damping <= max_damping"
            )


@dataclasses.dataclass
class LMResult:
    """What :func:`levenberg_marquardt` returns.

    Attributes:
        params: the refined parameters (same structure and dtypes as given).
        history: mean squared residual per sample, at the start and after every accepted step.
        converged: True if it stopped because no damped step lowered the residuals any more.
        damping: lambda after the last accepted step; passed as ``LMConfig.damping`` to a later call from ``params``,
            it continues the same sequence of steps (lambda is the only state carried between steps).
    """

    params: Any
    history: list[float]
    converged: bool
    damping: float | None = None


def _to64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if eqx.is_inexact_array_like(x) else x, tree)


def levenberg_marquardt(
    residual_fn: Callable[..., jax.Array],
    params,
    data: tuple,
    *,
    context=None,
    config: LMConfig = LMConfig(),
) -> LMResult:
    """Minimise sum over samples of |residual_fn(params, context, *sample)|^2 by damped Gauss-Newton steps.

    Args:
        residual_fn: ``(params, context, *sample) -> (k,)`` residuals of one sample (pure JAX).
        params: a pytree of float arrays (the parameters refined).
        data: a tuple of arrays sharing their leading sample axis.
        context: a pytree passed unchanged to ``residual_fn`` (e.g. the rest of a model); its float arrays are cast to
            float64 like ``params`` and ``data``.
        config: steps, chunk size, damping (:class:`LMConfig`).

    Raises:
        ValueError: on an empty data set or non-finite starting residuals.
    """
    n = int(np.shape(data[0])[0])
    if n == 0 or any(np.shape(x)[0] != n for x in data):
        raise ValueError(f"data need one non-empty leading sample axis; got shapes {[np.shape(x) for x in data]}")
    dtypes = jax.tree_util.tree_map(lambda x: jnp.asarray(x).dtype, params)
    with jax.enable_x64(True):
        theta, unravel = ravel_pytree(_to64(params))
        ctx = _to64(context)
        data64 = tuple(np.asarray(x, np.float64) for x in data)
        chunks = [tuple(jnp.asarray(x[k : k + config.chunk]) for x in data64) for k in range(0, n, config.chunk)]

        def res(th, c, *sample):
            return jnp.ravel(residual_fn(unravel(th), c, *sample))

        batched = jax.vmap(res, in_axes=(None, None) + (0,) * len(data))

        @jax.jit
        def normal_eq(th, c, *batch):
            r = batched(th, c, *batch)
            jac = jax.vmap(jax.jacrev(res), in_axes=(None, None) + (0,) * len(data))(th, c, *batch)
            jac = jac.reshape(-1, th.shape[0])
            r = r.reshape(-1)
            return jac.T @ jac, jac.T @ r, jnp.sum(r**2)

        @jax.jit
        def sse(th, c, *batch):
            return jnp.sum(batched(th, c, *batch) ** 2)

        def total_sse(th):
            return float(sum(sse(th, ctx, *b) for b in chunks))

        start = total_sse(theta)
        if not np.isfinite(start):
            raise ValueError("the residuals are not finite at the starting parameters; refine a trained model")
        history, lam, nu, converged = [start / n], config.damping, 2.0, False
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[msg]}"),
        )  # fmt: skip
        with Progress(*columns, disable=not config.progress) as bar:
            task = bar.add_task(config.label, total=config.steps, msg="")
            while len(history) - 1 < config.steps and not converged:
                jtj, jtr, cur = 0.0, 0.0, 0.0
                for b in chunks:
                    a_, g_, s_ = normal_eq(theta, ctx, *b)
                    jtj, jtr, cur = jtj + a_, jtr + g_, cur + s_
                damping = float(jnp.max(jnp.diag(jtj))) * jnp.eye(theta.shape[0])
                while True:  # retry with more damping until the step lowers the residuals
                    delta = jnp.linalg.solve(jtj + lam * damping, jtr)
                    cand = theta - delta
                    new = total_sse(cand) if bool(jnp.all(jnp.isfinite(cand))) else np.inf
                    predicted = float(2.0 * delta @ jtr - delta @ (jtj @ delta))  # of the linearised residuals
                    if np.isfinite(new) and new < float(cur) and predicted > 0:
                        # Nielsen's update: shrink lambda by how well the linear model predicted the decrease
                        rho = (float(cur) - new) / predicted
                        theta, lam, nu = cand, max(lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 1e-15), 2.0
                        history.append(new / n)
                        break
                    lam, nu = lam * nu, nu * 2.0
                    if lam > config.max_damping:
                        converged = True
                        break
                bar.update(task, completed=len(history) - 1, msg=f"loss {history[-1]:.3e}  lambda {lam:.1e}")
        out = unravel(theta)
    out = jax.tree_util.tree_map(lambda x, d: jnp.asarray(np.asarray(x), d), out, dtypes)
    return LMResult(params=out, history=history, converged=converged, damping=float(min(lam, config.max_damping)))
