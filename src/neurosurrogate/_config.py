"""Numerical precision switches (float32 by default, float64 on request) and the CPU devices JAX sees."""

from __future__ import annotations

import os

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


_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def use_host_devices(n: int | None = None) -> bool:
    """Expose the CPU as ``n`` JAX devices (default: one per core), so a population can be split over cores.

    XLA reads the setting when JAX starts its backends: call this before the first JAX computation (the
    ``neurosurrogate`` command line does). Other computations are unaffected: they stay on device 0.

    Args:
        n: number of CPU devices; None: ``os.cpu_count()``.

    Returns:
        True if the setting was applied; False if JAX had already started (a warning says so) or ``XLA_FLAGS``
        already sets the device count (that value wins).
    """
    from jax._src import xla_bridge

    n = int(n if n is not None else (os.cpu_count() or 1))
    if n < 1:
        raise ValueError(f"invalid n: got {n!r}. Use a positive number of CPU devices")
    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_DEVICES_FLAG in flags:
        return False
    if xla_bridge.backends_are_initialized():
        import warnings

        warnings.warn(
            "use_host_devices() came after the first JAX computation and has no effect; call it at the start "
            f"of the program or set XLA_FLAGS={_HOST_DEVICES_FLAG}={n}",
            stacklevel=2,
        )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICES_FLAG}={n}".strip()
    return True
