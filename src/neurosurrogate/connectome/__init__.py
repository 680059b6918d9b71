"""Connectome data and the C. elegans high-fidelity backend (c302 networks simulated in NEURON).

Importing this package does not import NEURON: simulations run in worker processes
(:mod:`neurosurrogate.connectome.worker`) launched by the executors of :mod:`neurosurrogate.parallel`.
"""

from .build import PARAMETER_SETS as PARAMETER_SETS
from .build import C302Config as C302Config
from .build import NeuronUnavailableError as NeuronUnavailableError
from .build import build_network as build_network
from .dataset import DEFAULT_AMPLITUDES as DEFAULT_AMPLITUDES
from .dataset import FCMConfig as FCMConfig
from .dataset import generate_fcm_dataset as generate_fcm_dataset
from .fcm import FCM_INPUTS as FCM_INPUTS
from .fcm import FCM_OUTPUTS as FCM_OUTPUTS
from .fcm import Stimulus as Stimulus
from .fcm import choose_split as choose_split
from .fcm import design_stimuli as design_stimuli
from .scenario import run_scenario_check as run_scenario_check
from .simulate import C302Run as C302Run
from .simulate import simulate_c302 as simulate_c302
