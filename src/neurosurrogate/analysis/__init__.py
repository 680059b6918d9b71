"""Analysis of simulators and surrogates: fixed points, eigenvalues, bifurcation diagrams."""

from .bifurcation import BifurcationDiagram as BifurcationDiagram
from .bifurcation import bifurcation_diagram as bifurcation_diagram
from .bifurcation import two_branch_diagram as two_branch_diagram
from .fixed_points import iterate_map as iterate_map
from .fixed_points import map_fixed_point as map_fixed_point
from .fixed_points import ode_eigenvalues_from_map as ode_eigenvalues_from_map
