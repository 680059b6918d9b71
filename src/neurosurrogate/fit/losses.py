"""Weighted mean-squared error over measurements and neurons (thesis eq. 3.20)."""

from __future__ import annotations

import jax.numpy as jnp


def weighted_mse(
    v, v_target, ca=None, ca_target=None, *, w_v: float = 1.0, w_ca: float = 0.0, neuron_weights=None
):
    """Cost(theta) = 1/(N T) sum_m w_m sum_n w_n sum_t d_mn(t)^2 (thesis eq. 3.20), averaged over stimuli.

    Args:
        v, v_target: simulated and target voltages, shape (..., stimulus, time, neuron), mV.
        ca, ca_target: simulated and target calcium (same shape) or None.
        w_v, w_ca: measurement weights w_m of voltage and calcium (calcium ignored when ``w_ca == 0``).
        neuron_weights: w_n, shape (neuron,) (default: ones).

    Returns:
        The loss, shape ``(...)`` (mV^2 when only the voltage is weighted).
    """
    n = v.shape[-1]
    w_n = jnp.ones((n,)) if neuron_weights is None else jnp.asarray(neuron_weights)

    def term(x, y):
        return jnp.mean(jnp.mean((x - y) ** 2 * w_n, axis=(-1, -2)), axis=-1)

    loss = w_v * term(v, v_target)
    if w_ca and ca is not None and ca_target is not None:
        loss = loss + w_ca * term(ca, ca_target)
    return loss
