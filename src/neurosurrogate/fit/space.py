"""The parameter space of a fit: which leaves of a model are free, their bounds and initialisation ranges.

A :class:`ParameterSpace` flattens the array leaves of a neuron module or a :class:`~neurosurrogate.Circuit` into named
leaves (``C_m`` for a neuron, ``neurons.C_m`` / ``synapses.G`` / ``gaps.G`` for a circuit). Free leaves are optimised
on unconstrained values (see :mod:`.transforms`); fixed leaves keep the template's values. Grouped (shared) neuron
parameters come from the circuit itself (``load_circuit(..., grouped=True)``): a shared set is one leaf entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._config import default_float
from ..models._neuron import AbstractNeuron
from ..models.circuit import Circuit
from ..models.synapses import ChemicalSynapses, GapJunctions
from .transforms import check_bounds, constrain, unconstrain


def _neuron_ranges(module: AbstractNeuron) -> dict[str, tuple]:
    lower, upper = module.bounds()
    out = {}
    for name, s in module.PARAMS.items():
        shape = np.shape(getattr(module, name))
        out[name] = (lower[name], upper[name], np.full(shape, s.init[0]), np.full(shape, s.init[1]))
    return out


#: synapse ranges of the thesis' circuit fits (tables A.8, A.9): (lower, upper, init low, init high); the scale range
#: is that of a rising synapse, mirrored for the inverted ones (negative slope, preset SYNAPSE_inhib2)
_THESIS_SYNAPSE = {"mdp": (-np.inf, np.inf, -50.0, 60.0), "scale": (0.1, np.inf, 0.1, 100.0)}


def _synapse_ranges(module: ChemicalSynapses | GapJunctions, g_max: float | None) -> dict[str, tuple]:
    lower, upper = module.bounds()
    out = {}
    for name, s in module.PARAMS.items():
        shape = np.shape(getattr(module, name))
        lo, hi = np.array(lower[name], float), np.array(upper[name], float)
        ilo, ihi = np.full(shape, s.init[0]), np.full(shape, s.init[1])
        if name == "G" and g_max is not None:
            hi = np.full(shape, float(g_max))
            ihi = np.full(shape, float(g_max))
        if name == "E":  # excitatory / inhibitory synapses keep their sign: draw inside their own bounds
            ilo, ihi = lo.copy(), hi.copy()
        if isinstance(module, ChemicalSynapses) and name in _THESIS_SYNAPSE:
            # thesis tables A.8 / A.9: every synapse gets the same ranges, except that a synapse keeps the sign of its
            # slope, as it keeps that of E: an inverted synapse (scale < 0, active when the presynaptic neuron is
            # hyperpolarised) cannot turn into a rising one by a continuous path through the bounds
            lo_t, hi_t, ilo_t, ihi_t = _THESIS_SYNAPSE[name]
            lo, hi = np.full(shape, lo_t), np.full(shape, hi_t)
            ilo, ihi = np.full(shape, ilo_t), np.full(shape, ihi_t)
            if name == "scale":
                inverted = np.broadcast_to(np.asarray(module.scale) < 0, shape)
                lo, hi = np.where(inverted, -hi, lo), np.where(inverted, -lo, hi)
                ilo, ihi = np.where(inverted, -ihi, ilo), np.where(inverted, -ilo, ihi)
        out[name] = (lo, hi, ilo, ihi)
    return out


def _ranges(model, g_max: float | None) -> dict[str, tuple]:
    if isinstance(model, Circuit):
        out = {f"neurons.{k}": v for k, v in _neuron_ranges(model.neurons).items()}
        out.update({f"synapses.{k}": v for k, v in _synapse_ranges(model.synapses, g_max).items()})
        out.update({f"gaps.{k}": v for k, v in _synapse_ranges(model.gaps, g_max).items()})
        return out
    if isinstance(model, AbstractNeuron):
        return _neuron_ranges(model)
    raise ValueError(
        f"invalid model: got {type(model).__name__}. Fit a neuron module (LeakyIntegrate, SimpleHH, CElegansHH) "
        "or a Circuit"
    )


def _leaf_paths(model) -> list[str]:
    arrays = eqx.filter(model, eqx.is_array)
    paths = []
    for path, _ in jax.tree_util.tree_flatten_with_path(arrays)[0]:
        paths.append(".".join(str(getattr(p, "name", getattr(p, "key", p))) for p in path))
    return paths


class ParameterSpace:
    """Free/fixed leaves, bounds and initialisation ranges of a model to fit.

    Args:
        template: one model (no population axis); its values are used for fixed parameters and define the structure.
        fixed: names of parameters kept at the template's value: a full path (``neurons.C_m``, ``synapses.G``) or a
            bare name matching every leaf that ends with it (``C_m``).
        g_max: optional upper bound (and initialisation upper end) of every synaptic and gap conductance, mS/cm2
            (the tap-withdrawal experiment uses 2).

    Example:
        >>> space = ParameterSpace(LeakyIntegrate.default(), fixed=["E_L"])
        >>> space.free_names
        ('C_m', 'g_L')
    """

    def __init__(self, template, *, fixed: Sequence[str] = (), g_max: float | None = None):
        ranges = _ranges(template, g_max)
        arrays, self.static = eqx.partition(template, eqx.is_array)
        leaves, self.treedef = jax.tree.flatten(arrays)
        self.paths = tuple(_leaf_paths(template))
        if set(self.paths) != set(ranges):
            raise AssertionError(f"leaf paths {self.paths} do not match parameter specs {sorted(ranges)}")
        self.template_leaves = tuple(jnp.asarray(x) for x in leaves)
        fixed = tuple(fixed)
        for name in fixed:
            if not any(p == name or p.endswith("." + name) for p in self.paths):
                raise ValueError(
                    f"invalid fixed parameter: got {name!r}. Choose among {list(self.paths)} (or a bare name)"
                )
        self.free = tuple(not any(p == f or p.endswith("." + f) for f in fixed) for p in self.paths)
        if not any(self.free):
            raise ValueError(
                f"invalid fixed: got {list(fixed)}, which fixes every parameter. Leave some free"
            )
        self.lower, self.upper, self.init_low, self.init_high = (
            tuple(np.asarray(ranges[p][i], float) for p in self.paths) for i in range(4)
        )
        for p, lo, hi in zip(self.paths, self.lower, self.upper, strict=True):
            check_bounds(lo, hi, f"bounds of {p}")

    # ------------------------------------------------------------------------------------------ names and sizes
    @property
    def free_names(self) -> tuple[str, ...]:
        """Paths of the free leaves."""
        return tuple(p for p, f in zip(self.paths, self.free, strict=True) if f)

    @property
    def size(self) -> int:
        """Number of free scalar parameters."""
        return int(sum(x.size for x, f in zip(self.template_leaves, self.free, strict=True) if f))

    def _free(self, seq):
        return tuple(x for x, f in zip(seq, self.free, strict=True) if f)

    # ------------------------------------------------------------------------------------------ population
    def sample(self, key: jax.Array, population: int) -> tuple[jax.Array, ...]:
        """Unconstrained free leaves (leading axis ``population``) of a population drawn uniformly in the init ranges.

        Args:
            key: JAX PRNG key.
            population: number of members P.

        Returns:
            A tuple with one array (P, *leaf_shape) per free leaf.
        """
        keys = jax.random.split(key, len(self.paths))
        out = []
        dtype = default_float()
        for k, lo, hi, ilo, ihi, f in zip(
            keys, self.lower, self.upper, self.init_low, self.init_high, self.free, strict=True
        ):
            if not f:
                continue
            x = jax.random.uniform(k, (population, *lo.shape), dtype, 0.0, 1.0)
            x = jnp.asarray(ilo, dtype) + x * jnp.asarray(ihi - ilo, dtype)
            out.append(unconstrain(x, jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)))
        return tuple(out)

    def step_scales(self) -> tuple[jax.Array, ...]:
        """Per free scalar, the unconstrained width of the central 98 % of its initialisation range.

        Multiplying Adam's (unit-sized) steps by these widths makes the learning rate the fraction of each
        parameter's initialisation range moved per step, whatever its units (a time constant in [1, 200] ms and a
        conductance in [0.1, 10] mS/cm2 then move alike).
        """
        dtype = default_float()
        out = []
        for lo, hi, ilo, ihi in zip(
            self._free(self.lower), self._free(self.upper), self._free(self.init_low), self._free(self.init_high),
            strict=True,
        ):
            inner = 0.01 * (ihi - ilo)
            a, b = (
                unconstrain(jnp.asarray(x, dtype), jnp.asarray(lo, dtype), jnp.asarray(hi, dtype))
                for x in (ilo + inner, ihi - inner)
            )
            out.append(jnp.maximum(jnp.abs(b - a), jnp.asarray(1e-3, dtype)))
        return tuple(out)

    def unconstrain_model(self, model) -> tuple[jax.Array, ...]:
        """Unconstrained free leaves of a model (any leading population axes)."""
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
        return self._free(
            unconstrain(x, jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype))
            for x, lo, hi in zip(leaves, self.lower, self.upper, strict=True)
        )

    def model(self, u: Sequence[jax.Array]):
        """The model for unconstrained free leaves ``u`` (fixed leaves from the template, broadcast to u's batch).

        Works for one member (leaves of the template's shape) or a population (a leading axis on every ``u``).
        """
        u = list(u)
        batch = None
        leaves = []
        it = iter(u)
        for x0, lo, hi, f in zip(self.template_leaves, self.lower, self.upper, self.free, strict=True):
            if f:
                ui = next(it)
                batch = ui.shape[: ui.ndim - x0.ndim]
                leaves.append(constrain(ui, jnp.asarray(lo, ui.dtype), jnp.asarray(hi, ui.dtype)))
            else:
                leaves.append(None)
        batch = batch or ()
        leaves = [
            jnp.broadcast_to(x0, (*batch, *x0.shape)) if x is None else x
            for x, x0 in zip(leaves, self.template_leaves, strict=True)
        ]
        return eqx.combine(jax.tree.unflatten(self.treedef, leaves), self.static)

    def named_values(self, model) -> dict[str, np.ndarray]:
        """Every parameter of ``model`` as NumPy arrays keyed by path."""
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
        return {p: np.asarray(x) for p, x in zip(self.paths, leaves, strict=True)}

    def describe(self) -> dict:
        """JSON-ready summary (free/fixed names, counts)."""
        return {
            "free": list(self.free_names),
            "fixed": [p for p, f in zip(self.paths, self.free, strict=True) if not f],
            "n_free_scalars": self.size,
        }
