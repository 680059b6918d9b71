"""neurosurrogate: simulate biophysical neural systems, learn fast surrogates, fit parameters (JAX).

The public API is re-exported here; submodules starting with an underscore are private.
"""

from ._config import enable_float64 as enable_float64
from ._config import use_host_devices as use_host_devices
from .models import AbstractNeuron as AbstractNeuron
from .models import CElegansHH as CElegansHH
from .models import ChemicalSynapses as ChemicalSynapses
from .models import Circuit as Circuit
from .models import ExplicitEuler as ExplicitEuler
from .models import ExponentialEuler as ExponentialEuler
from .models import GapJunctions as GapJunctions
from .models import LeakyIntegrate as LeakyIntegrate
from .models import SemiImplicit as SemiImplicit
from .models import SimpleHH as SimpleHH
from .models import build_circuit as build_circuit
from .models import load_circuit as load_circuit
from .simulate import Trajectory as Trajectory
from .simulate import simulate as simulate
from .simulate import simulate_population as simulate_population
from .simulate import stack_models as stack_models

__version__ = "0.1.0"
