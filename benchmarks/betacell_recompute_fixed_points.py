"""Recompute the fixed-point/eigenvalue analysis of a betacell-map run folder from its saved maps (no retraining).

    PYTHONPATH=src python benchmarks/betacell_recompute_fixed_points.py RUN_FOLDER SYSTEM DT [DT ...]

Writes RUN_FOLDER/fixed_points_recomputed.json and figures/*_recomputed.png (101 values of V_S).
"""

import json
import sys
from pathlib import Path

import numpy as np

from neurosurrogate.analysis.bifurcation import stable_interval
from neurosurrogate.experiments.betacell_map import _fig_eigs, _fig_fp_distance, compare_fixed_points, eigenvalue_errors
from neurosurrogate.models.betacell import BetaCell
from neurosurrogate.surrogates.recurrent_map import load_map

run = Path(sys.argv[1])
system = sys.argv[2]
dts = [float(x) for x in sys.argv[3:]]
nets = {dt: load_map(run / f"map_dt{dt:g}.eqx") for dt in dts}
v = np.linspace(-40, -30, 101)
fps = compare_fixed_points(BetaCell.from_name(system), nets, v)
out = {}
for dt, m in fps["maps"].items():
    d = np.linalg.norm(m["u"] - fps["u_ode"], axis=1)
    out[f"dt{dt:g}"] = {
        "max_distance": float(d.max()),
        "median_distance": float(np.median(d)),
        "all_converged": bool(m["converged"].all()),
        "eq18_vs_autodiff_max_abs": m["jac_err"],
        "eig_rel_err_left_half": eigenvalue_errors(v, fps["mu_ode"], m["mu"], -35.0).tolist(),
        "eig_rel_err_mu1_mu3_left_half": [
            float(x) for x in eigenvalue_errors(v, fps["mu_ode"], m["mu"], -35.0)[[0, 2]]
        ],
        "distance_at": {f"{x:g}": float(y) for x, y in zip(v[::10], d[::10], strict=True)},
    }
    if system == "modified":
        out[f"dt{dt:g}"]["stable_interval_map"] = stable_interval(v, m["mu"][:, 0].real)
out["stable_interval_ode"] = stable_interval(v, fps["mu_ode"][:, 0].real)
_fig_fp_distance(
    run / "figures" / "fixed_point_distance_recomputed.png",
    v,
    {dt: np.linalg.norm(m["u"] - fps["u_ode"], axis=1) for dt, m in fps["maps"].items()},
)
_fig_eigs(run / "figures" / "eigenvalues_recomputed.png", v, fps["mu_ode"], fps["maps"])
(run / "fixed_points_recomputed.json").write_text(json.dumps(out, indent=1))
print(json.dumps(out, indent=1))
