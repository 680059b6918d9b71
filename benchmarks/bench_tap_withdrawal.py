"""Tap-withdrawal speed benchmark: neurosurrogate's SemiImplicit solver against Jaxley, in the same run.

Run (from the repository root):

    bash benchmarks/setup_jaxley_env.sh
    benchmarks/.venv-jaxley/bin/python benchmarks/bench_tap_withdrawal.py --out runs/bench_tap.json

Workload: the 9-neuron tap-withdrawal circuit (CHH neurons with calcium, 23 graded synapses, 6 gap
junctions), 3 stimuli x 1.2 s at dt = 0.3 ms (4000 steps each), loss = MSE of the AVA/AVB voltages
against a target trace, float32. A population of P independent parameter sets of the whole circuit (all
9 x 28 neuron, 23 x 4 synapse and 6 gap parameters, each multiplied by U(0.9, 1.1)) is evaluated in one
vmapped, jit-compiled call: forward (loss) and value-and-grad (per-member gradient w.r.t. every
parameter). Timings: one warm-up (compile) call, then the median of ``--repeats`` calls with
``jax.block_until_ready``; reported per member (total / P).

The Jaxley side builds the same circuit from Jaxley's own pieces: 9 single-compartment cells in a
``jx.Network``, a ``Channel`` subclass ``CHH`` (5 gates + calcium as channel states), a ``Synapse``
subclass for the graded synapse and another for gap junctions (Jaxley has none: each junction is two
directed "synapses" G (V_post - V_pre) sharing one conductance), stimuli via ``data_stimulate``,
parameters via ``data_set``, and ``jx.integrate`` with its default backward-Euler voltage solver.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", False)

from neurosurrogate.models.circuit import load_circuit  # noqa: E402
from neurosurrogate.simulate import simulate  # noqa: E402

DT = 0.3  # ms
DURATION = 1200.0  # ms
N_STIMULI = 3
OUTPUTS = ("AVA", "AVB")
# Jaxley converts point-process currents (nA) to densities with 1e5 / area[um2]: an area of 1e5 um2 makes
# 1 nA == 1 uA/cm2, so synapse, gap and stimulus currents carry the same numbers as in neurosurrogate.
AREA_UM2 = 1e5
RADIUS_UM = 10.0
LENGTH_UM = AREA_UM2 / (2 * np.pi * RADIUS_UM)
NEURON_FIELDS = (
    "C_m g_Ca g_Ks g_Kf g_L E_Ca E_K E_L p_tau p_scale p_mdp q_tau q_scale q_mdp n_tau n_scale n_mdp "
    "e_tau e_scale e_mdp f_tau f_scale f_mdp h_alpha h_scale h_mdp tau_Ca rho_Ca"
).split()


# ------------------------------------------------------------------------------------------------ workload
def make_stimuli(circuit) -> np.ndarray:
    """(3, 4000, 4) sensor currents (uA/cm2): three taps on the posterior / anterior / all touch sensors."""
    steps = int(round(DURATION / DT))
    t = np.arange(steps) * DT
    sensors = list(circuit.sensors)  # PVD PLM AVM ALM
    out = np.zeros((N_STIMULI, steps, len(sensors)), np.float32)

    def pulse(start, stop, amp):
        return np.where((t >= start) & (t < stop), amp, 0.0)

    for name in ("PVD", "PLM"):
        out[0, :, sensors.index(name)] = pulse(200.0, 500.0, 20.0)
    for name in ("AVM", "ALM"):
        out[1, :, sensors.index(name)] = pulse(300.0, 700.0, 20.0)
    for j in range(len(sensors)):
        out[2, :, j] = pulse(100.0, 400.0, 15.0) + pulse(700.0, 900.0, 10.0)
    return out


def make_population(circuit, p: int, seed: int = 0):
    """P parameter sets: every parameter of the default circuit times U(0.9, 1.1) (signs and bounds kept)."""
    arrays, static = eqx.partition(circuit, eqx.is_array)
    leaves, treedef = jax.tree.flatten(arrays)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    new = [
        x[None] * jax.random.uniform(k, (p, *x.shape), x.dtype, 0.9, 1.1)
        for k, x in zip(keys, leaves, strict=True)
    ]
    return eqx.combine(jax.tree.unflatten(treedef, new), static)


def n_parameters(circuit) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(eqx.filter(circuit, eqx.is_array)))


# ------------------------------------------------------------------------------------------------ ours
def ours_traces(circuit, stimuli):
    """(S, T, 2) AVA/AVB voltages of one parameter set on every stimulus."""

    def one(current):
        return simulate(circuit, current, dt=DT, inputs=circuit.sensors, record=OUTPUTS).V

    return jax.vmap(one)(stimuli)


def ours_loss(circuit, stimuli, target):
    return jnp.mean((ours_traces(circuit, stimuli) - target) ** 2)


# ------------------------------------------------------------------------------------------------ jaxley
def build_jaxley(circuit, stimuli, checkpoint_lengths=None):
    """The same circuit in Jaxley; returns (traces_fn(theta, stimuli) -> (S, T, 2), jaxley version).

    ``checkpoint_lengths`` goes to ``jx.integrate`` (Jaxley's nested checkpointing of the time scan, which
    speeds its backward pass up on CPU much as ``jax.checkpoint`` does for ours).
    """
    from importlib.metadata import version

    import jaxley as jx
    from jaxley.channels import Channel
    from jaxley.synapses import Synapse

    def sig(x):
        return jax.nn.sigmoid(x)

    class CHH(Channel):
        """ODYNN's C. elegans HH channel set: g_Ca e^2 f h(Ca), g_Kf p^4 q, g_Ks n, leak; calcium as a state.

        Parameters keep neurosurrogate's units (mS/cm2, ms, mV); the current is returned in mA/cm2 as Jaxley
        requires. Gates and Ca use backward Euler, (x + dt x_inf/tau) / (1 + dt/tau), like neurosurrogate.
        """

        def __init__(self, name=None):
            self.current_is_in_mA_per_cm2 = True
            super().__init__(name)
            pre = self._name
            d = {f: float(np.asarray(getattr(circuit.neurons, f))[0]) for f in NEURON_FIELDS if f != "C_m"}
            self.channel_params = {f"{pre}_{k}": v for k, v in d.items()}
            self.channel_states = {
                f"{pre}_p": 0.0,
                f"{pre}_q": 0.95,
                f"{pre}_n": 0.0,
                f"{pre}_e": 0.0,
                f"{pre}_f": 1.0,
                f"{pre}_Ca": 1e-7,
            }
            self.current_name = "i_CHH"

        def _g(self, states, params):
            pre = self._name
            P = lambda k: params[f"{pre}_{k}"]
            S = lambda k: states[f"{pre}_{k}"]
            h = 1.0 + (sig((S("Ca") - P("h_mdp")) / P("h_scale")) - 1.0) * P("h_alpha")
            g_ca = P("g_Ca") * S("e") ** 2 * S("f") * h
            g_k = P("g_Kf") * S("p") ** 4 * S("q") + P("g_Ks") * S("n")
            return g_ca, g_k

        def update_states(self, states, dt, v, params):
            pre = self._name
            P = lambda k: params[f"{pre}_{k}"]
            S = lambda k: states[f"{pre}_{k}"]
            g_ca, _ = self._g(states, params)
            out = {}
            for x in "pqnef":
                tau = P(f"{x}_tau")
                x_inf = sig((v - P(f"{x}_mdp")) / P(f"{x}_scale"))
                out[f"{pre}_{x}"] = (S(x) + dt * x_inf / tau) / (1.0 + dt / tau)
            i_ca = g_ca * (v - P("E_Ca"))
            out[f"{pre}_Ca"] = (S("Ca") - dt * P("rho_Ca") * i_ca) / (1.0 + dt / P("tau_Ca"))
            return out

        def compute_current(self, states, v, params):
            pre = self._name
            P = lambda k: params[f"{pre}_{k}"]
            g_ca, g_k = self._g(states, params)
            i = g_ca * (v - P("E_Ca")) + g_k * (v - P("E_K")) + P("g_L") * (v - P("E_L"))
            return i / 1000.0  # uA/cm2 -> mA/cm2

        def init_state(self, states, v, params, delta_t):
            return {}

    class Graded(Synapse):
        """I_post = G sigmoid((V_pre - mdp)/scale) (E - V_post); returned as Jaxley's outward current (nA)."""

        def __init__(self, name=None):
            super().__init__(name)
            pre = self._name
            self.synapse_params = {
                f"{pre}_G": 0.5,
                f"{pre}_mdp": -20.0,
                f"{pre}_scale": 5.0,
                f"{pre}_E": 10.0,
            }
            self.synapse_states = {}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            return {}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            pre = self._name
            s = sig((pre_voltage - params[f"{pre}_mdp"]) / params[f"{pre}_scale"])
            return -params[f"{pre}_G"] * s * (params[f"{pre}_E"] - post_voltage)

    class Gap(Synapse):
        """One direction of a gap junction: outward current G (V_post - V_pre) (two edges per junction)."""

        def __init__(self, name=None):
            super().__init__(name)
            self.synapse_params = {f"{self._name}_G": 0.2}
            self.synapse_states = {}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            return {}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            return params[f"{self._name}_G"] * (post_voltage - pre_voltage)

    comp = jx.Compartment()
    branch = jx.Branch(comp, ncomp=1)
    cells = [jx.Cell(branch, parents=[-1]) for _ in circuit.names]
    net = jx.Network(cells)
    net.set("radius", RADIUS_UM)
    net.set("length", LENGTH_UM)
    net.insert(CHH())
    net.set("v", -60.0)
    syn = circuit.synapses
    for a, b in zip(syn.pre, syn.post, strict=True):
        jx.connect(net.cell(a).branch(0).comp(0), net.cell(b).branch(0).comp(0), Graded())
    gaps = circuit.gaps
    for a, b in list(zip(gaps.a, gaps.b, strict=True)) + list(zip(gaps.b, gaps.a, strict=True)):
        jx.connect(net.cell(a).branch(0).comp(0), net.cell(b).branch(0).comp(0), Gap())
    for name in OUTPUTS:
        net.cell(circuit.names.index(name)).branch(0).comp(0).record("v", verbose=False)
    sensor_idx = [circuit.names.index(s) for s in circuit.sensors]

    def param_values(theta):
        """(Jaxley key, values) for every parameter of one parameter set (our Circuit pytree)."""
        neurons = theta.expanded_neurons()
        out = [("capacitance", neurons.C_m)]
        out += [(f"CHH_{f}", getattr(neurons, f)) for f in NEURON_FIELDS[1:]]
        out += [(f"Graded_{k}", getattr(theta.synapses, k)) for k in ("G", "mdp", "scale", "E")]
        out += [("Gap_G", jnp.concatenate([theta.gaps.G, theta.gaps.G]))]
        return out

    # `data_set` builds its index arrays with jnp ops, which become tracers under jit (and then fail inside
    # `integrate` in this version); so call it once eagerly and, per parameter set, swap in the traced values.
    template = None
    for key, val in param_values(circuit):
        template = net.data_set(key, val, template)

    def traces_one(theta, current):
        """(T, 2) for one parameter set (our Circuit pytree) and one (T, 4) stimulus."""
        ps = [dict(entry, val=val) for entry, (_, val) in zip(template, param_values(theta), strict=True)]
        ds = None
        for j, i in enumerate(sensor_idx):
            ds = net.cell(i).branch(0).comp(0).data_stimulate(current[:, j], ds)
        recs = jx.integrate(
            net, param_state=ps, data_stimuli=ds, delta_t=DT, checkpoint_lengths=checkpoint_lengths
        )  # (2, T + 1)
        return recs[:, : current.shape[0]].T

    def traces(theta, stims):
        return jax.vmap(traces_one, in_axes=(None, 0))(theta, stims)

    return traces, version("jaxley")


# ------------------------------------------------------------------------------------------------ timing
def median_time(fn, args, repeats: int) -> tuple[float, float, float]:
    """(compile+first call s, median wall s, median process CPU s) of ``repeats`` compiled calls.

    The CPU time (all threads of this process) is reported too because the shared machine is often
    oversubscribed: wall time then includes waiting for a core, CPU time (mostly) does not.
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return first, statistics.median(walls), statistics.median(cpus)


def population_fns(loss):
    """jit(vmap(loss)) and jit(vmap(value_and_grad(loss))) over a stacked population."""
    fwd = eqx.filter_jit(eqx.filter_vmap(loss, in_axes=(eqx.if_array(0), None, None)))
    grad = eqx.filter_jit(
        eqx.filter_vmap(eqx.filter_value_and_grad(loss), in_axes=(eqx.if_array(0), None, None))
    )
    return fwd, grad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--populations", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--skip-jaxley", action="store_true", help="time only neurosurrogate")
    ap.add_argument(
        "--jaxley-repeats", type=int, default=None, help="repeats for Jaxley (default: --repeats)"
    )
    ap.add_argument(
        "--jaxley-checkpoint",
        type=int,
        nargs="*",
        default=[80, 50],
        help="also time Jaxley's gradient with jx.integrate(checkpoint_lengths=...) (product >= 4000); "
        "the faster of plain/checkpointed Jaxley is used for the ratio; pass no value to skip",
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    circuit = load_circuit("tap_withdrawal")
    stimuli = jnp.asarray(make_stimuli(circuit))
    target = jax.jit(ours_traces)(circuit, stimuli)  # the default circuit's own AVA/AVB traces
    n_params = n_parameters(circuit)
    console.print(
        f"tap-withdrawal: {circuit.n} neurons, {len(circuit.synapses.pre)} synapses, "
        f"{len(circuit.gaps.a)} gaps, {n_params} parameters per member; {N_STIMULI} stimuli x "
        f"{stimuli.shape[1]} steps (dt {DT} ms); dtype {stimuli.dtype}"
    )
    console.print(f"load average {os.getloadavg()}")
    console.print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cpus, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}"
    )

    ours_fwd, ours_grad = population_fns(ours_loss)
    jaxley_version = None
    jx_grad_ck = None
    if not args.skip_jaxley:
        jx_traces_fn, jaxley_version = build_jaxley(circuit, stimuli)

        def jx_loss(theta, stims, tgt):
            return jnp.mean((jx_traces_fn(theta, stims) - tgt) ** 2)

        jx_fwd, jx_grad = population_fns(jx_loss)
        if args.jaxley_checkpoint:
            jx_ck_fn, _ = build_jaxley(circuit, stimuli, checkpoint_lengths=list(args.jaxley_checkpoint))

            def jx_loss_ck(theta, stims, tgt):
                return jnp.mean((jx_ck_fn(theta, stims) - tgt) ** 2)

            jx_grad_ck = population_fns(jx_loss_ck)[1]
        # sanity check: identical default parameters, traces should roughly agree
        jx_default = jax.jit(jx_traces_fn)(circuit, stimuli)
        assert jx_default.dtype == jnp.float32, jx_default.dtype
        diff = float(jnp.max(jnp.abs(jx_default - target)))
        console.print(
            f"jaxley {jaxley_version}: max |V_ours - V_jaxley| on AVA/AVB (default parameters, 3 stimuli) "
            f"= {diff:.3f} mV; AVA range {float(target[..., 0].min()):.1f}..{float(target[..., 0].max()):.1f}"
            f" mV, AVB range {float(target[..., 1].min()):.1f}..{float(target[..., 1].max()):.1f} mV"
        )
    else:
        diff = None

    rows = []
    for p in args.populations:
        pop = make_population(circuit, p)
        row = {"population": p}
        for side, fwd, grad, reps in (
            ("ours", ours_fwd, ours_grad, args.repeats),
            *(
                ()
                if args.skip_jaxley
                else (("jaxley", jx_fwd, jx_grad, args.jaxley_repeats or args.repeats),)
            ),
        ):
            c_f, t_f, u_f = median_time(fwd, (pop, stimuli, target), reps)
            c_g, t_g, u_g = median_time(grad, (pop, stimuli, target), reps)
            row[f"{side}_fwd_ms_per_member"] = 1e3 * t_f / p
            row[f"{side}_grad_ms_per_member"] = 1e3 * t_g / p
            row[f"{side}_fwd_cpu_ms_per_member"] = 1e3 * u_f / p
            row[f"{side}_grad_cpu_ms_per_member"] = 1e3 * u_g / p
            row[f"{side}_fwd_first_call_s"] = c_f
            row[f"{side}_grad_first_call_s"] = c_g
            console.print(
                f"  P={p:3d} {side:6s} fwd {1e3 * t_f / p:9.2f} ms/member  grad {1e3 * t_g / p:9.2f} "
                f"ms/member  (CPU {1e3 * u_f / p:.2f} / {1e3 * u_g / p:.2f} ms/member; "
                f"first calls {c_f:.1f} s / {c_g:.1f} s)"
            )
        if not args.skip_jaxley and jx_grad_ck is not None:
            reps = args.jaxley_repeats or args.repeats
            c_g, t_g, u_g = median_time(jx_grad_ck, (pop, stimuli, target), reps)
            row["jaxley_grad_plain_ms_per_member"] = row["jaxley_grad_ms_per_member"]
            row["jaxley_grad_plain_cpu_ms_per_member"] = row["jaxley_grad_cpu_ms_per_member"]
            row["jaxley_grad_checkpointed_ms_per_member"] = 1e3 * t_g / p
            row["jaxley_grad_checkpointed_cpu_ms_per_member"] = 1e3 * u_g / p
            row["jaxley_grad_cpu_ms_per_member"] = min(row["jaxley_grad_cpu_ms_per_member"], 1e3 * u_g / p)
            row["jaxley_grad_checkpointed_first_call_s"] = c_g
            row["jaxley_grad_ms_per_member"] = min(row["jaxley_grad_ms_per_member"], 1e3 * t_g / p)
            console.print(
                f"  P={p:3d} jaxley grad with checkpoint_lengths={args.jaxley_checkpoint}: "
                f"{1e3 * t_g / p:9.2f} ms/member (CPU {1e3 * u_g / p:.2f}; first call {c_g:.1f} s)"
            )
        if not args.skip_jaxley:
            row["fwd_speedup"] = row["jaxley_fwd_ms_per_member"] / row["ours_fwd_ms_per_member"]
            row["grad_speedup"] = row["jaxley_grad_ms_per_member"] / row["ours_grad_ms_per_member"]
            row["fwd_speedup_cpu_time"] = (
                row["jaxley_fwd_cpu_ms_per_member"] / row["ours_fwd_cpu_ms_per_member"]
            )
            row["grad_speedup_cpu_time"] = (
                row["jaxley_grad_cpu_ms_per_member"] / row["ours_grad_cpu_ms_per_member"]
            )
        rows.append(row)

    table = Table(
        title="tap-withdrawal, ms per population member (median, compiled; Jaxley grad: best of plain and "
        "checkpointed)"
    )
    cols = ["population", "ours fwd", "ours grad", "ours grad CPU"]
    if not args.skip_jaxley:
        cols += [
            "jaxley fwd",
            "jaxley grad",
            "jaxley grad CPU",
            "fwd speed-up",
            "grad speed-up",
            "grad CPU ratio",
        ]
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        cells = [
            str(r["population"]),
            f"{r['ours_fwd_ms_per_member']:.2f}",
            f"{r['ours_grad_ms_per_member']:.2f}",
            f"{r['ours_grad_cpu_ms_per_member']:.2f}",
        ]
        if not args.skip_jaxley:
            cells += [
                f"{r['jaxley_fwd_ms_per_member']:.2f}",
                f"{r['jaxley_grad_ms_per_member']:.2f}",
                f"{r['jaxley_grad_cpu_ms_per_member']:.2f}",
                f"{r['fwd_speedup']:.1f}x",
                f"{r['grad_speedup']:.1f}x",
                f"{r['grad_speedup_cpu_time']:.1f}x",
            ]
        table.add_row(*cells)
    console.print(table)

    big = max(rows, key=lambda r: r["population"])
    targets = {
        "grad_ms_per_member_at_max_population": big["ours_grad_ms_per_member"],
        "grad_target_30ms_met": big["ours_grad_ms_per_member"] <= 30.0,
        "grad_cpu_ms_per_member_at_max_population": big["ours_grad_cpu_ms_per_member"],
    }
    if not args.skip_jaxley:
        targets["grad_speedup_at_max_population"] = big["grad_speedup"]
        targets["speedup_target_3x_met"] = big["grad_speedup"] >= 3.0
        targets["grad_speedup_cpu_time_at_max_population"] = big["grad_speedup_cpu_time"]
    console.print(f"targets (population {big['population']}): {targets}")

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "workload": {
                "circuit": "tap_withdrawal",
                "stimuli": N_STIMULI,
                "steps": int(stimuli.shape[1]),
                "dt_ms": DT,
                "duration_ms": DURATION,
                "dtype": "float32",
                "parameters_per_member": n_params,
                "loss": "MSE of AVA/AVB voltage vs target",
            },
            "environment": {
                "python": sys.version.split()[0],
                "jax": jax.__version__,
                "jaxley": jaxley_version,
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                "repeats": args.repeats,
                "jaxley_checkpoint_lengths": args.jaxley_checkpoint,
                "load_average_at_end": os.getloadavg(),
            },
            "max_abs_diff_mV_default_params": diff,
            "results": rows,
            "targets": targets,
        }
        args.out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
