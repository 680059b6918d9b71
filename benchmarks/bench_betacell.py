"""Benchmark: 300 s of beta-cell dynamics for 100 values of V_S, by map iteration vs ODE solvers, in one run.

    PYTHONPATH=src python benchmarks/bench_betacell.py [--map runs/betacell-map-original/map_dt0.005.eqx]
        [--n-vs 100] [--t-end 300] [--n-scipy 10] [--n-kvaerno 10]

Contenders (output every dt = 0.005 s, 60 000 points per trajectory):
  * map: the trained recurrent map (eq. 8), vmapped over the V_S values, float32, one jitted scan (compile time is
    reported separately);
  * scipy LSODA with a pure-Python right-hand side (rtol 1e-8, atol 1e-10), one trajectory after another;
  * Diffrax Tsit5 (rtol 1e-8, float64), vmapped over the V_S values in one call;
  * Diffrax Kvaerno5 (stiff, rtol 1e-8, float64), vmapped.
The sequential scipy solver and Kvaerno5 run on a subset (``--n-scipy``, ``--n-kvaerno``; 0 = all) and their time is
scaled linearly to ``--n-vs`` trajectories (the solves are independent); the subset is printed with the result.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from neurosurrogate.analysis.fixed_points import iterate_map
from neurosurrogate.experiments.betacell_map import load_map
from neurosurrogate.models.betacell import BetaCell, solve
from neurosurrogate.surrogates.recurrent_map import RecurrentMap


def _rhs_python(model: BetaCell, V_S: float):
    """Pure-Python/NumPy right-hand side (the usual way scipy users write it)."""
    p = model

    def f(t, u):
        V, n, S = u
        m_inf = 1.0 / (1.0 + math.exp((p.V_m - V) / p.theta_m))
        n_inf = 1.0 / (1.0 + math.exp((p.V_n - V) / p.theta_n))
        s_inf = 1.0 / (1.0 + math.exp((V_S - V) / p.theta_S))
        p_inf = 1.0 / (math.exp((V - p.V_p) / p.theta_p) + math.exp((p.V_p - V) / p.theta_p))
        i_ion = (
            p.g_Ca * m_inf * (V - p.V_Ca)
            + p.g_K * n * (V - p.V_K)
            + p.g_S * S * (V - p.V_K)
            + p.g_K2 * p_inf * (V - p.V_K)
        )
        return [-i_ion / p.tau, p.sigma * (n_inf - n) / p.tau, (s_inf - S) / p.tau_S]

    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", type=Path, default=Path("runs/betacell-map-original/map_dt0.005.eqx"))
    ap.add_argument("--system", default="original")
    ap.add_argument("--n-vs", type=int, default=100)
    ap.add_argument("--t-end", type=float, default=300.0)
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--n-scipy", type=int, default=10)
    ap.add_argument("--n-kvaerno", type=int, default=10)
    args = ap.parse_args()

    model = BetaCell.from_name(args.system)
    v_s = np.linspace(-40.0, -30.0, args.n_vs)
    u0 = np.array([-60.0, 0.01, 0.18])
    n_steps = int(round(args.t_end / args.dt))
    ts = np.arange(n_steps + 1) * args.dt
    print(
        f"beta-cell benchmark: {args.n_vs} values of V_S, {args.t_end:g} s each, output every {args.dt:g} s "
        f"({n_steps + 1} points), jax {jax.__version__} on {jax.devices()[0].platform}"
    )

    # --- map -------------------------------------------------------------------------------------------------------
    if args.map.exists():
        net = load_map(args.map)
        src = str(args.map)
    else:
        net = RecurrentMap.init(jax.random.PRNGKey(0))
        net = net.with_standardisation([-53.0, 0.011, 0.18], [10.2, 0.0225, 0.0049], [-35.0], [2.9])
        src = "untrained map of the same size (no trained map found; timing does not depend on the weights)"
    u0s = jnp.tile(jnp.asarray(u0, dtype=jnp.float32), (args.n_vs, 1))
    vs32 = jnp.asarray(v_s, dtype=jnp.float32)
    t = time.perf_counter()
    iterate_map(net, u0s, vs32, n_steps).block_until_ready()
    t_map_first = time.perf_counter() - t
    t = time.perf_counter()
    out = iterate_map(net, u0s, vs32, n_steps).block_until_ready()
    t_map = time.perf_counter() - t
    print(
        f"map ({src}): {t_map:.3f} s (first call with compilation {t_map_first:.2f} s), "
        f"finite: {bool(np.isfinite(np.asarray(out)).all())}"
    )

    # --- scipy LSODA -----------------------------------------------------------------------------------------
    n_sc = args.n_vs if args.n_scipy <= 0 else min(args.n_scipy, args.n_vs)
    idx = np.linspace(0, args.n_vs - 1, n_sc).round().astype(int)
    t = time.perf_counter()
    for k in idx:
        solve_ivp(
            _rhs_python(model, float(v_s[k])),
            (0.0, args.t_end),
            u0,
            method="LSODA",
            t_eval=ts,
            rtol=1e-8,
            atol=1e-10,
        )
    t_scipy_sub = time.perf_counter() - t
    t_scipy = t_scipy_sub * args.n_vs / n_sc
    print(
        f"scipy LSODA: {t_scipy_sub:.2f} s for {n_sc} trajectories -> {t_scipy:.1f} s for {args.n_vs} "
        f"({t_scipy_sub / n_sc:.2f} s per trajectory)"
    )

    # --- diffrax -----------------------------------------------------------------------------------------------
    results = {}
    with jax.enable_x64(True):
        u0d = jnp.tile(jnp.asarray(u0), (args.n_vs, 1))
        vsd = jnp.asarray(v_s)
        tsd = jnp.asarray(ts)
        for name, solver, n_sub in (
            ("Tsit5", diffrax.Tsit5(), args.n_vs),
            ("Kvaerno5", diffrax.Kvaerno5(), args.n_kvaerno),
        ):
            n_sub = args.n_vs if n_sub <= 0 else min(n_sub, args.n_vs)
            sel = np.linspace(0, args.n_vs - 1, n_sub).round().astype(int)
            # compile on a short horizon with the same shapes, then time the real run
            t = time.perf_counter()
            solve(model, u0d[sel], vsd[sel], tsd, solver=solver).block_until_ready()
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            solve(model, u0d[sel], vsd[sel], tsd, solver=solver).block_until_ready()
            t_sub = time.perf_counter() - t
            results[name] = t_sub * args.n_vs / n_sub
            print(
                f"diffrax {name} (vmapped, float64, rtol 1e-8): {t_sub:.2f} s for {n_sub} trajectories -> "
                f"{results[name]:.1f} s for {args.n_vs} (first call {t_first:.1f} s)"
            )

    print("\nratios (time of the ODE solver / time of the map, larger = map faster):")
    print(f"  scipy LSODA      / map: {t_scipy / t_map:8.1f}x   (target >= 100x)")
    for name, tt in results.items():
        print(f"  diffrax {name:8s} / map: {tt / t_map:8.1f}x")


if __name__ == "__main__":
    main()
