"""Dynamical systems: neuron models, synapses, circuits and solvers."""

from ._neuron import AbstractNeuron as AbstractNeuron
from ._params import ParamSpec as ParamSpec
from .betacell import BetaCell as BetaCell
from .circuit import Circuit as Circuit
from .circuit import build_circuit as build_circuit
from .circuit import circuit_names as circuit_names
from .circuit import circuit_tap_groups as circuit_tap_groups
from .circuit import load_circuit as load_circuit
from .neurons import NEURON_MODELS as NEURON_MODELS
from .neurons import CElegansHH as CElegansHH
from .neurons import LeakyIntegrate as LeakyIntegrate
from .neurons import SimpleHH as SimpleHH
from .neurons import neuron_model as neuron_model
from .solvers import AbstractSolver as AbstractSolver
from .solvers import ExplicitEuler as ExplicitEuler
from .solvers import ExponentialEuler as ExponentialEuler
from .solvers import SemiImplicit as SemiImplicit
from .synapses import SYNAPSE_PRESETS as SYNAPSE_PRESETS
from .synapses import ChemicalSynapses as ChemicalSynapses
from .synapses import GapJunctions as GapJunctions
