"""How accurate a recurrent map must be at the ODE's fixed point for its own fixed point to land within a distance.

    PYTHONPATH=src python benchmarks/betacell_fixed_point_sensitivity.py [--system original] [--dt 0.005]
        [--target 1e-2] [--map runs/betacell-map-original/map_dt0.005.eqx] [--v-s=-34.6,-34.5,-34.4]

The exact flow map over dt has the increment Jacobian M = expm(J dt) - I at the ODE's fixed point u* (J: the ODE's
Jacobian). A map whose increment at u* is off by e moves its fixed point by about -M^-1 e (first order), so the
largest error in variable k that keeps the shift within ``--target`` is target / |column k of M^-1|. The script prints
these bounds per V_S (physical units per step: V in mV, n, S) and, with ``--map``, the map's actual increment errors at
u* and the first-order shift they cause. The slow eigenvalue mu_2 ~ 0.09 1/s makes M nearly singular: M^-1 amplifies
errors about 1 / (mu_2 dt) ~ 2000-fold along the slow direction. The table's "slowest |Re mu|" column shows where
this gets worse: in the modified system the slow eigenvalue nearly vanishes on the spiking side close to the stable
interval's right end (a near-fold, where u* moves fast with V_S), and the bounds shrink with it (``--v-s`` lists any
V_S values, e.g. that stretch at 0.1 spacing).

With ``--map`` and ``--eigen-v-s=-37.1,-37.0,-35.0`` it also prints, at those V_S, the relative error of the real part
of each ODE eigenvalue taken from the map's Jacobian at u* (mu = ln(lambda) / dt), and the same error with one row of
the map's Jacobian (V, n or S) replaced by the exact flow's (expm(J dt)): the row whose replacement removes most of the
error is the subnetwork whose derivatives limit the eigenvalues there.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from neurosurrogate.analysis.fixed_points import ode_rates
from neurosurrogate.models.betacell import BetaCell, fixed_point, jacobian
from neurosurrogate.surrogates.recurrent_map import load_map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", default="original")
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--target", type=float, default=1e-2)
    ap.add_argument(
        "--v-s", default=None, help="V_S values for the table (default -40, -39, ..., -30), e.g. =-34.6,-34.5,-34.4"
    )
    ap.add_argument("--map", default=None, help="a map written by save_map (optional)")
    ap.add_argument(
        "--eigen-v-s", default=None, help="V_S for the eigenvalue attribution (with --map), e.g. =-37.1,-35.0"
    )
    args = ap.parse_args()
    model = BetaCell.from_name(args.system)
    net = load_map(args.map) if args.map else None
    v_s_values = np.linspace(-40.0, -30.0, 11) if args.v_s is None else _floats(args.v_s)
    header = f"{'V_S':>6} | slowest |Re mu| | bound on the error per step: {'V (mV)':>9} {'n':>9} {'S':>9}"
    if net is not None:
        header += f" | map's error at u*: {'V (mV)':>9} {'n':>9} {'S':>9} | first-order shift"
    print(header)
    for vs in v_s_values:
        with jax.enable_x64(True):
            u = np.asarray(fixed_point(model, vs))
            J = np.asarray(jacobian(model, jnp.asarray(u), vs))
        Minv = np.linalg.inv(scipy.linalg.expm(J * args.dt) - np.eye(3))
        bound = args.target / np.linalg.norm(Minv, axis=0)
        slowest = np.min(np.abs(np.linalg.eigvals(J).real))  # near zero: u* moves fast with V_S, M^-1 is huge
        line = f"{vs:6.2f} | {slowest:14.4f} | {'':29s}{bound[0]:9.2e} {bound[1]:9.2e} {bound[2]:9.2e}"
        if net is not None:
            z = (u - np.asarray(net.m_u)) / np.asarray(net.s_u)
            q = (np.array([vs]) - np.asarray(net.m_p)) / np.asarray(net.s_p)
            inc = np.asarray(net.increment_standardised(jnp.asarray(z, jnp.float32), jnp.asarray(q, jnp.float32)))
            err = inc.astype(np.float64) * np.asarray(net.s_u)  # the true increment at u* is 0
            line += f" | {'':19s}{err[0]:9.2e} {err[1]:9.2e} {err[2]:9.2e} | {np.linalg.norm(Minv @ err):9.2e}"
        print(line)
    if net is not None and args.eigen_v_s:
        eigenvalue_attribution(model, net, _floats(args.eigen_v_s), args.dt)


def _floats(text: str) -> list[float]:
    """A comma-separated list of V_S values, e.g. "-34.6,-34.5"."""
    return [float(x) for x in text.split(",")]


def eigenvalue_attribution(model: BetaCell, net, v_s_values: list[float], dt: float) -> None:
    """Relative errors of Re mu from the map's Jacobian at u*, as is and with each row replaced by the flow's."""
    print(f"\n{'V_S':>6} | Re mu (ODE) {'':18s} | rel. error of Re mu: map | V row exact | n row exact | S row exact")
    for vs in v_s_values:
        with jax.enable_x64(True):
            u = np.asarray(fixed_point(model, vs))
            flow = scipy.linalg.expm(np.asarray(jacobian(model, jnp.asarray(u), vs)) * dt)
        jac = np.asarray(net.jacobian(jnp.asarray(u, jnp.float32), jnp.asarray([vs], jnp.float32)), np.float64)
        cols = [jac]
        for row in range(3):
            swapped = jac.copy()
            swapped[row] = flow[row]
            cols.append(swapped)
        with jax.enable_x64(True):
            ref = np.asarray(ode_rates(np.linalg.eigvals(flow), dt=dt)).real
            cols = [np.abs(np.asarray(ode_rates(np.linalg.eigvals(a), dt=dt)).real - ref) / np.abs(ref) for a in cols]
        errors = " | ".join("/".join(f"{100 * x:.1f}" for x in c) + " %" for c in cols)
        print(f"{vs:6.1f} | " + " ".join(f"{x:9.4f}" for x in ref) + " | " + errors)


if __name__ == "__main__":
    main()
