"""Numerical precision switches (float32 by default, float64 on request)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def enable_float64(enable: bool = True) -> None:
    """Switch JAX to 64-bit floats for the whole process (call before building models).

    Args:
        enable: True for float64, False to go back to float32.
    """
    jax.config.update("jax_enable_x64", bool(enable))


def default_float() -> jnp.dtype:
    """The floating dtype new arrays get: float64 if x64 is enabled, else float32."""
    return jnp.asarray(0.0).dtype


def as_float(x) -> jax.Array:
    """Convert to an array of the current default float dtype."""
    return jnp.asarray(x, dtype=default_float())
