"""Parameter metadata shared by every model: default, bounds, initialisation range and unit."""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._config import as_float


class ParamSpec(NamedTuple):
    """Facts about one parameter (ODYNN thesis tables A.1-A.6).

    Attributes:
        default: value of the reference model.
        lower: hard lower bound (``-inf`` when free).
        upper: hard upper bound (``inf`` when free).
        init: (low, high) of the uniform distribution random populations are drawn from.
        unit: physical unit.
    """

    default: float
    lower: float
    upper: float
    init: tuple[float, float]
    unit: str


INF = math.inf


def spec(default: float, lower: float = -INF, upper: float = INF, init=None, unit: str = "") -> ParamSpec:
    """Build a :class:`ParamSpec`; ``init`` defaults to the default value (no spread)."""
    init = (default, default) if init is None else (float(init[0]), float(init[1]))
    return ParamSpec(float(default), float(lower), float(upper), init, unit)


def check_specs(specs: dict[str, ParamSpec]) -> None:
    """Every default and initialisation range must sit inside the bounds (a programming error otherwise)."""
    for name, s in specs.items():
        for v in (s.default, *s.init):
            if not (s.lower <= v <= s.upper):
                raise AssertionError(f"parameter {name}: {v} outside bounds [{s.lower}, {s.upper}]")


def full_params(specs: dict[str, ParamSpec], shape: tuple[int, ...], overrides: dict | None = None) -> dict:
    """Arrays of the default values with ``shape``, with optional per-name overrides (broadcast)."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(specs)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(specs)}")
    return {
        name: jnp.broadcast_to(as_float(overrides.get(name, s.default)), shape) + jnp.zeros(shape, as_float(0).dtype)
        for name, s in specs.items()
    }


def random_params(specs: dict[str, ParamSpec], key: jax.Array, shape: tuple[int, ...]) -> dict:
    """Draw every parameter uniformly in its initialisation range (the thesis' random population)."""
    keys = jax.random.split(key, len(specs))
    out = {}
    for k, (name, s) in zip(keys, specs.items(), strict=True):
        lo, hi = s.init
        out[name] = jax.random.uniform(k, shape, as_float(0).dtype, lo, hi)
    return out


def bounds_of(module: eqx.Module, specs: dict[str, ParamSpec]) -> tuple[dict, dict]:
    """Lower and upper bounds broadcast to the shape of each parameter leaf of ``module``."""
    lower, upper = {}, {}
    for name, s in specs.items():
        shape = np.shape(getattr(module, name))
        lower[name] = np.full(shape, s.lower)
        upper[name] = np.full(shape, s.upper)
    return lower, upper
