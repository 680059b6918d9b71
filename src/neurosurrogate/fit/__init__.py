"""Parameter fitting: bounds as bijections, random populations trained by per-member Adam (ODYNN thesis 3.3)."""

from .losses import weighted_mse as weighted_mse
from .population import FitProblem as FitProblem
from .population import FitResult as FitResult
from .population import FitSettings as FitSettings
from .population import FitState as FitState
from .population import Measurements as Measurements
from .population import evaluate as evaluate
from .population import fit_population as fit_population
from .population import load_checkpoint as load_checkpoint
from .population import make_loss as make_loss
from .population import save_checkpoint as save_checkpoint
from .space import ParameterSpace as ParameterSpace
from .transforms import constrain as constrain
from .transforms import unconstrain as unconstrain
