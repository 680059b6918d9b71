"""The Sherman-Rinzel-Keizer pancreatic beta-cell model and its bistable modification.

Kuptsov, Stankevich & Bagautdinova (seed 003), eq. 1-7; the modification (g_K2 > 0) is that of Stankevich & Mosekilde
(2017). Time is in seconds, voltages in mV, conductances are relative (the model is written with the membrane time
constant ``tau`` in front of dV/dt). The control parameter is ``V_S`` (mV), the half-activation voltage of the slow
variable S, in [-40, -30].

The state is a length-3 array ``u = (V, n, S)``; every function here accepts one state and one scalar ``V_S`` and is
vmapped by the caller for populations. Reference solutions need float64 (enable it with ``jax.enable_x64(True)``
around the call); the functions follow the dtype of their inputs and do not switch precision globally.

Example:
    >>> import jax
    >>> with jax.enable_x64(True):
    ...     model = BetaCell.original()
    ...     u_star = fixed_point(model, -36.0)        # (V, n, S) = (-49.897, 2.3452e-3, 0.19946)
    ...     mu = eigenvalues(model, -36.0)             # 20.772, 0.090834, -42.884  (1/s)
"""

from __future__ import annotations

import warnings
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float

__all__ = [
    "BetaCell",
    "V_S_RANGE",
    "STATE_NAMES",
    "check_state",
    "check_v_s",
    "eigenvalues",
    "fixed_point",
    "flow_step",
    "jacobian",
    "solve",
]

#: the control-parameter range the paper (and the surrogates) cover, mV
V_S_RANGE: tuple[float, float] = (-40.0, -30.0)
#: names of the three state variables, in order
STATE_NAMES: tuple[str, str, str] = ("V", "n", "S")

State = Float[Array, "3"]


class BetaCell(eqx.Module):
    """SRK beta-cell model (seed 003 eq. 1-7); ``g_K2 = 0`` is the original system, ``g_K2 = 0.12`` the bistable one.

    Attributes (all scalars):
        tau: membrane time constant, s.
        tau_S: time constant of the slow variable S, s.
        sigma: relative rate of the gate n (dimensionless).
        g_Ca, g_K, g_S, g_K2: relative conductances (dimensionless; currents in mV).
        V_Ca, V_K: reversal potentials, mV.
        V_m, theta_m, V_n, theta_n, theta_S: half-activation voltages and slopes of m_inf, n_inf, S_inf, mV.
        V_p, theta_p: centre and width of the bell-shaped p_inf of the extra potassium current (eq. 7), mV.
    """

    tau: float = 0.02
    tau_S: float = 35.0
    sigma: float = 0.93
    g_Ca: float = 3.6
    g_K: float = 10.0
    g_S: float = 4.0
    g_K2: float = 0.0
    V_Ca: float = 25.0
    V_K: float = -75.0
    V_m: float = -20.0
    theta_m: float = 12.0
    V_n: float = -16.0
    theta_n: float = 5.6
    theta_S: float = 10.0
    V_p: float = -49.5
    theta_p: float = 1.0

    @classmethod
    def original(cls) -> BetaCell:
        """The original SRK system (g_K2 = 0): unstable fixed point, bursting/spiking attractor."""
        return cls(g_K2=0.0)

    @classmethod
    def modified(cls) -> BetaCell:
        """The bistable modification (g_K2 = 0.12): a stable fixed point coexists with bursting."""
        return cls(g_K2=0.12)

    @classmethod
    def from_name(cls, system: Literal["original", "modified"]) -> BetaCell:
        """``"original"`` or ``"modified"``."""
        if system == "original":
            return cls.original()
        if system == "modified":
            return cls.modified()
        raise ValueError(f"system={system!r} is not known; use 'original' (g_K2 = 0) or 'modified' (g_K2 = 0.12)")

    # --- steady-state functions, eq. 6-7 -------------------------------------------------------------------------
    def m_inf(self, V):
        return jax.nn.sigmoid((V - self.V_m) / self.theta_m)  # eq. 6, w = m

    def n_inf(self, V):
        return jax.nn.sigmoid((V - self.V_n) / self.theta_n)  # eq. 6, w = n

    def S_inf(self, V, V_S):
        return jax.nn.sigmoid((V - V_S) / self.theta_S)  # eq. 6, w = S

    def p_inf(self, V):
        x = (V - self.V_p) / self.theta_p
        return 0.5 / jnp.cosh(x)  # eq. 7: 1/(e^x + e^-x)

    # --- right-hand side, eq. 1-5 --------------------------------------------------------------------------------
    def vector_field(self, t, u: State, V_S) -> State:
        """du/dt (units per second) at state ``u = (V, n, S)`` and control parameter ``V_S`` (mV). Diffrax order."""
        del t
        V, n, S = u[0], u[1], u[2]
        I_Ca = self.g_Ca * self.m_inf(V) * (V - self.V_Ca)  # eq. 2
        I_K = self.g_K * n * (V - self.V_K)  # eq. 3
        I_S = self.g_S * S * (V - self.V_K)  # eq. 4
        I_K2 = self.g_K2 * self.p_inf(V) * (V - self.V_K)  # eq. 5
        dV = (-I_Ca - I_K - I_K2 - I_S) / self.tau  # eq. 1
        dn = self.sigma * (self.n_inf(V) - n) / self.tau
        dS = (self.S_inf(V, V_S) - S) / self.tau_S
        return jnp.stack([dV, dn, dS])

    def __call__(self, u: State, V_S) -> State:
        return self.vector_field(0.0, u, V_S)


# --- input checks -----------------------------------------------------------------------------------------------------
def check_state(u: ArrayLike, *, name: str = "u") -> Array:
    """Return ``u`` as an array whose last axis has length 3 (V, n, S), or raise a ValueError naming the problem."""
    arr = jnp.asarray(u)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}; a beta-cell state is (V, n, S): pass an array whose last axis has "
            "length 3, e.g. jnp.array([-50.0, 0.002, 0.19])"
        )
    return arr


def check_v_s(V_S: ArrayLike, *, name: str = "V_S", v_range: tuple[float, float] = V_S_RANGE, strict: bool = False):
    """Warn (or raise with ``strict``) if a concrete ``V_S`` lies outside ``v_range``; traced values are not checked."""
    try:
        values = np.asarray(V_S, dtype=float)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or inf; pass finite values in mV within {list(v_range)}")
    lo, hi = v_range
    bad = values[(values < lo - 1e-9) | (values > hi + 1e-9)]
    if bad.size:
        msg = (
            f"{name} = {bad.ravel()[:5].tolist()} lies outside the range {list(v_range)} mV covered by the paper "
            "and by the training data; results there are an extrapolation"
        )
        if strict:
            raise ValueError(msg + "; pass values inside the range")
        warnings.warn(msg, UserWarning, stacklevel=3)


# --- fixed point and linearisation ------------------------------------------------------------------------------------
def _fp_initial(model: BetaCell, V_S, V0):
    V0 = jnp.asarray(V0, dtype=jnp.result_type(float))
    return jnp.stack([V0, model.n_inf(V0), model.S_inf(V0, V_S)])


def fixed_point(model: BetaCell, V_S, *, V0: float = -50.0, rtol: float = 1e-12, atol: float = 1e-12) -> State:
    """The ODE's fixed point by Newton's method (Optimistix) on du/dt = 0.

    The model has one equilibrium in the studied range; Newton starts on the nullcline n = n_inf(V0), S = S_inf(V0).
    Use float64 for 4+ significant digits.

    Args:
        model: the beta-cell model.
        V_S: control parameter, mV (scalar; vmap for many).
        V0: starting voltage, mV.
        rtol, atol: Newton tolerances.

    Returns:
        (V, n, S) at the fixed point, shape (3,).
    """
    V_S = jnp.asarray(V_S, dtype=jnp.result_type(float))
    scale = jnp.array([1.0, 1e-3, 1e-1], dtype=V_S.dtype)  # typical sizes of V, n, S

    def residual(x, args):
        u = x * scale
        return model.vector_field(0.0, u, V_S) * jnp.array([model.tau, model.tau, model.tau_S], dtype=V_S.dtype)

    x0 = _fp_initial(model, V_S, V0) / scale
    sol = optx.root_find(residual, optx.Newton(rtol=rtol, atol=atol), x0, max_steps=100, throw=False)
    return sol.value * scale


def flow_step(model: BetaCell, u: State, V_S, dt: float, *, max_substep: float = 5e-5) -> State:
    """The exact flow map over one step, u(t + dt) from u(t), by classical RK4 with substeps of at most
    ``max_substep`` s (100 substeps for dt = 0.005).

    A fixed number of substeps keeps the result smooth in (u, V_S), so its Jacobian and Hessian (``jax.jacfwd``)
    are those of the flow map itself; the stiffest rate on the attractor is ~190 1/s, so h * 190 <= 0.01 and the
    local error is ~1e-12 relative. In float64 it matches the adaptive reference solve to ~1e-9 of the state's scale.
    """
    n_sub = max(1, int(np.ceil(dt / max_substep - 1e-9)))
    h = dt / n_sub

    def rk4(x, _):
        k1 = model(x, V_S)
        k2 = model(x + 0.5 * h * k1, V_S)
        k3 = model(x + 0.5 * h * k2, V_S)
        k4 = model(x + h * k3, V_S)
        return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

    return jax.lax.scan(rk4, u, None, length=n_sub)[0]


def jacobian(model: BetaCell, u: State, V_S) -> Float[Array, "3 3"]:
    """d(du/dt)/du at ``u`` (autodiff), 1/s."""
    return jax.jacfwd(lambda x: model.vector_field(0.0, x, V_S))(u)


def eigenvalues(model: BetaCell, V_S, *, u: State | None = None) -> Float[Array, "3"]:
    """Eigenvalues (1/s, complex) of the Jacobian at the fixed point (or at ``u``), sorted by decreasing real part."""
    if u is None:
        u = fixed_point(model, V_S)
    mu = jnp.linalg.eigvals(jacobian(model, u, V_S))
    return mu[jnp.argsort(-mu.real)]


# --- reference trajectories ----------------------------------------------------------------------------------
def solve(
    model: BetaCell,
    u0: ArrayLike,
    V_S: ArrayLike,
    ts: ArrayLike,
    *,
    t0: float = 0.0,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: int = 2_000_000,
) -> Float[Array, "*batch time 3"]:
    """Reference trajectory with a stiff Diffrax solver (Kvaerno5, PID step control) at tight tolerance.

    ``u0`` and ``V_S`` may carry matching leading batch dimensions (``u0`` (..., 3), ``V_S`` (...)); the solve is
    vmapped over them. Call inside ``jax.enable_x64(True)`` for reference accuracy.

    Args:
        model: the beta-cell model.
        u0: initial state(s) (V mV, n, S), shape (..., 3).
        V_S: control parameter(s), mV, shape (...) broadcastable against ``u0[..., 0]``.
        ts: increasing output times, s, shape (time,); ``ts[0] >= t0``.
        t0: start time, s.
        rtol, atol: step-size controller tolerances.
        solver: a Diffrax solver (default ``Kvaerno5()``, L-stable SDIRK).
        max_steps: upper bound on solver steps per trajectory.

    Returns:
        The states at ``ts``, shape (..., time, 3).

    Example:
        >>> traj = solve(BetaCell.original(), jnp.array([-60.0, 0.0, 0.18]), -36.0, jnp.arange(0, 10, 0.005))
    """
    u0 = check_state(u0, name="u0")
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts has shape {tuple(ts.shape)}; pass a 1-D increasing array of output times in seconds")
    V_S = jnp.broadcast_to(jnp.asarray(V_S, dtype=u0.dtype), u0.shape[:-1])
    solver = diffrax.Kvaerno5() if solver is None else solver
    return _solve_batched(model, u0, V_S, ts, float(t0), float(rtol), float(atol), solver, int(max_steps))


@eqx.filter_jit
def _solve_batched(model, u0, V_S, ts, t0: float, rtol: float, atol: float, solver, max_steps: int):
    """Jitted (and cached across calls: the floats and the solver are static) vmapped Diffrax solve."""
    term = diffrax.ODETerm(model.vector_field)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    t1 = ts[-1]

    def one(u, p):
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=t0,
            t1=t1,
            dt0=1e-4,
            y0=u,
            args=p,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=False,
        )
        return sol.ys

    fn = one
    for _ in range(u0.ndim - 1):
        fn = jax.vmap(fn)
    return fn(u0, V_S)
