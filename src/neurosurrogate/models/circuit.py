"""Circuits: neurons coupled by graded synapses and gap junctions (thesis algorithm 3.4)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

import equinox as eqx
import jax
import numpy as np

from ._neuron import AbstractNeuron
from .neurons import neuron_model
from .solvers import AbstractSolver, SemiImplicit
from .synapses import GAP_PRESET, ChemicalSynapses, GapJunctions


class Circuit(eqx.Module):
    """Named neurons (one parameter set each, or shared within groups), synapses and gap junctions.

    Attributes:
        neurons: neuron parameters with one entry per parameter *set* (leaf shape ``(n_sets,)``).
        synapses: chemical synapses between neuron indices.
        gaps: gap junctions between neuron indices.
        names: neuron names, in state order.
        param_index: for each neuron, which parameter set it uses (``range(n)`` when every neuron has its own).
        sensors: names of the neurons that receive external input by default.
        outputs: names of the neurons whose traces are fitted/recorded by default.
    """

    neurons: AbstractNeuron
    synapses: ChemicalSynapses
    gaps: GapJunctions
    names: tuple[str, ...] = eqx.field(static=True)
    param_index: tuple[int, ...] = eqx.field(static=True)
    sensors: tuple[str, ...] = eqx.field(static=True, default=())
    outputs: tuple[str, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"circuit neuron names must be unique; got {self.names}")
        if len(self.param_index) != len(self.names):
            raise ValueError("param_index needs one entry per neuron")
        for role in ("sensors", "outputs"):
            unknown = [x for x in getattr(self, role) if x not in self.names]
            if unknown:
                raise ValueError(f"{role} {unknown} are not neurons of the circuit {self.names}")

    @property
    def n(self) -> int:
        """Number of neurons."""
        return len(self.names)

    @property
    def has_calcium(self) -> bool:
        return type(self.neurons).has_calcium

    def index(self, names: Sequence[str]) -> tuple[int, ...]:
        """State indices of the named neurons (clear error for unknown names)."""
        lookup = {name: i for i, name in enumerate(self.names)}
        unknown = [x for x in names if x not in lookup]
        if unknown:
            raise ValueError(f"unknown neuron(s) {unknown}; this circuit has {list(self.names)}")
        return tuple(lookup[x] for x in names)

    def expanded_neurons(self) -> AbstractNeuron:
        """Neuron parameters with one entry per neuron (shared sets repeated)."""
        if self.param_index == tuple(range(self.n)):
            return self.neurons
        idx = np.asarray(self.param_index)
        return jax.tree.map(lambda p: p[..., idx], self.neurons)

    def init_state(self):
        return self.expanded_neurons().init_state()

    def step(self, state, i_in, dt, solver: AbstractSolver = SemiImplicit()):
        """One circuit step: synaptic and gap currents from the previous voltages join the input (alg. 3.4)."""
        i_total = i_in + self.synapses.currents(state.V) + self.gaps.currents(state.V)
        return self.expanded_neurons().step(state, i_total, dt, solver)


def build_circuit(
    names: Sequence[str],
    synapses: Sequence[tuple[str, str, str]],
    gaps: Sequence[tuple[str, str]] = (),
    *,
    neuron: str | AbstractNeuron = "CHH",
    groups: Sequence[Sequence[str]] | None = None,
    sensors: Sequence[str] = (),
    outputs: Sequence[str] = (),
    gap_conductance: float = GAP_PRESET,
) -> Circuit:
    """Assemble a :class:`Circuit` from a connectivity list.

    Args:
        names: neuron names.
        synapses: (pre, post, preset) triples; preset is an ODYNN preset name or ``"exc"``/``"inh"`` (mapped to
            ``SYNAPSE``/``SYNAPSE_inhib``).
        gaps: (a, b) pairs.
        neuron: model short name (LI, SHH, CHH) with default parameters, or a neuron module with one entry per neuron
            (or per group).
        groups: partition of the neurons into groups sharing one parameter set; ``[names]`` gives the thesis'
            'grouped' mode. None: every neuron has its own set.
        sensors, outputs: default input and output neurons.
        gap_conductance: G_gap of every gap junction (mS/cm2).
    """
    names = tuple(names)
    lookup = {x: i for i, x in enumerate(names)}

    def idx(x: str) -> int:
        if x not in lookup:
            raise ValueError(f"connection refers to unknown neuron {x!r}; neurons are {list(names)}")
        return lookup[x]

    if groups is None:
        param_index = tuple(range(len(names)))
    else:
        param_index_list = [-1] * len(names)
        for g, members in enumerate(groups):
            for m in members:
                param_index_list[idx(m)] = g
        missing = [names[i] for i, g in enumerate(param_index_list) if g < 0]
        if missing:
            raise ValueError(f"groups must cover every neuron; missing {missing}")
        param_index = tuple(param_index_list)
    n_sets = max(param_index) + 1
    if isinstance(neuron, str):
        neurons = neuron_model(neuron).default(n_sets)
    else:
        neurons = neuron
        if neurons.n != n_sets:
            raise ValueError(f"neuron module has {neurons.n} parameter sets, the circuit needs {n_sets}")
    alias = {"exc": "SYNAPSE", "inh": "SYNAPSE_inhib"}
    syn = ChemicalSynapses.from_presets(
        [idx(s[0]) for s in synapses], [idx(s[1]) for s in synapses],
        [alias.get(s[2], s[2]) for s in synapses], len(names),
    )
    gap = GapJunctions.uniform([idx(a) for a, _ in gaps], [idx(b) for _, b in gaps], len(names), gap_conductance)
    return Circuit(neurons, syn, gap, names, param_index, tuple(sensors), tuple(outputs))


_PACKAGED = {"tap_withdrawal", "forward_locomotion"}


def circuit_names() -> list[str]:
    """Names of the circuits shipped with the package."""
    return sorted(_PACKAGED)


def _packaged(name: str) -> dict:
    key = name.lower().replace("-", "_")
    if key not in _PACKAGED:
        raise ValueError(f"unknown circuit {name!r}; packaged circuits: {circuit_names()}")
    text = resources.files("neurosurrogate.models").joinpath("circuits/odynn_circuits.json").read_text()
    return json.loads(text)[key]


def circuit_tap_groups(name: str) -> tuple[tuple[str, ...], ...]:
    """The touch-sensor groups of a packaged circuit that receive mechanical taps together (tap withdrawal: the
    anterior AVM/ALM and the posterior PVD/PLM); empty for a circuit without touch sensors."""
    return tuple(tuple(g) for g in _packaged(name).get("tap_groups", ()))


def load_circuit(name: str, *, neuron: str = "CHH", grouped: bool = False) -> Circuit:
    """Load a packaged circuit by name ("tap_withdrawal" or "forward_locomotion"; '-' and case are ignored).

    Args:
        name: circuit name.
        neuron: neuron model for every cell (LI, SHH, CHH), default parameters.
        grouped: share one parameter set across all neurons (the thesis' 'grouped' mode).
    """
    data = _packaged(name)
    names = data["neurons"]
    sensors = data.get("sensors", [n for n in names if n.startswith("AVB")])
    outputs = data.get("commands", [n for n in names if n.startswith("DB")])
    return build_circuit(
        names, [tuple(s) for s in data["synapses"]], [tuple(g) for g in data["gaps"]], neuron=neuron,
        groups=[names] if grouped else None, sensors=sensors, outputs=outputs,
    )

