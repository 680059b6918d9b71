"""Training data for the beta-cell recurrent map (seed 003, Sec. 3): standardised (p, u(t), u(t + dt)) pairs.

C control parameters V_S are drawn uniformly in [-40, -30]; for each, the ODE is solved from a random start far from
the fixed point, a transient is dropped, and a chunk of S + 1 consecutive points at step dt is recorded on the bursting
or spiking attractor. Chunks that settle on the fixed point (possible for the bistable system) are discarded and
redrawn, so the fixed point is never in the data. The pairs are standardised with eq. 10 and written to Zarr.
An optional part (``start="fixed_point"``, not in the paper) records short chunks from random starts inside the ball
the other parts leave out around the ODE's fixed point, so that the map also learns the flow next to u* (its fixed
points and eigenvalues are read there); that part is standardised with the other parts' constants.

Dataset layout (``kind="betacell-map-pairs"``): variables ``p`` (sample, param), ``u`` and ``v`` (sample, var),
standardised; ``du`` (sample, var) the standardised increment (v - u) / s_u computed in float64; ``chunk`` (sample)
the chunk index; ``V_S`` (chunk) in mV; ``fixed_point_start`` (chunk) whether the chunk started near the fixed point;
``m_u``, ``s_u`` (var) and ``m_p``, ``s_p`` (param) the eq. 10 constants.
Attributes: ``dt`` (s), ``system``, ``g_K2``, ``transient`` (s), ``chunk_time`` (s), ``n_chunks``, ``seed``,
``max_pairs``, ``v_s_range``; the per-part settings are lists when the data combine several parts
(``make_map_dataset`` with a sequence of ``MapDataConfig``, e.g. attractor chunks plus fast transients).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..models.betacell import STATE_NAMES, V_S_RANGE, BetaCell, fixed_point, flow_step, solve
from .store import load_dataset, save_dataset

__all__ = [
    "ALLOWED_DT",
    "MapDataConfig",
    "fixed_point_separation",
    "fixed_point_pairs",
    "flow_derivatives",
    "load_map_dataset",
    "make_map_dataset",
    "pairs_arrays",
    "save_map_dataset",
]

#: time steps of the paper (s)
ALLOWED_DT: tuple[float, ...] = (0.005, 0.0025, 0.001)
KIND = "betacell-map-pairs"
#: the cube of random initial states of the paper (Sec. 2): V mV, n, S
START_CUBE = ((-70.0, -10.0), (0.0, 0.12), (0.17, 0.2))


def start_cube_with_s(s_range: tuple[float, float] | None) -> tuple[tuple[float, float], ...]:
    """The paper's start cube with the S range replaced by ``s_range`` (None: the cube itself)."""
    return START_CUBE if s_range is None else (*START_CUBE[:2], tuple(s_range))


@dataclasses.dataclass(frozen=True)
class MapDataConfig:
    """How to build the pairs.

    Attributes:
        system: ``"original"`` (g_K2 = 0) or ``"modified"`` (g_K2 = 0.12).
        dt: time step of the map, s (one of 0.005, 0.0025, 0.001).
        n_chunks: C, number of trajectory chunks (one V_S each).
        chunk_time: length of a chunk, s (S = chunk_time / dt pairs per chunk).
        transient: time dropped before recording, s.
        seed: seed of V_S and initial states.
        v_s_range: range of V_S, mV.
        min_distance: a start closer than this (scaled Euclidean distance, V/10 mV, n/0.01, S/0.01) to the fixed point
            is redrawn; a chunk whose V varies by less than 1 mV is discarded as resting. With ``start="fixed_point"``
            the radius of the ball of starts around the fixed point.
        rtol: tolerance of the reference solve.
        batch: chunks solved together (vmapped).
        max_pairs: keep a random subset of this many pairs (consecutive pairs are nearly redundant); None keeps all.
        start_cube: ((V_lo, V_hi), (n_lo, n_hi), (S_lo, S_hi)), the box of random initial states (default: the
            paper's cube of Sec. 2). With a short ``transient`` the chunks keep part of S's slow relaxation from its
            start value (tau_S = 35 s), so the S range of the start box widens the S range of the data.
        start: ``"cube"`` (default): random starts in ``start_cube`` at least ``min_distance`` from the fixed point,
            resting chunks discarded; ``"fixed_point"``: random starts inside the ball of scaled radius
            ``min_distance`` around the ODE's fixed point u*(V_S) (the distance uniform in [0, radius]), every chunk
            kept (this part's pairs do not enter the eq. 10 constants, which stay those of the cube parts).
    """

    system: Literal["original", "modified"] = "original"
    dt: float = 0.005
    n_chunks: int = 100
    chunk_time: float = 20.0
    transient: float = 100.0
    seed: int = 0
    v_s_range: tuple[float, float] = V_S_RANGE
    min_distance: float = 1.0
    rtol: float = 1e-8
    batch: int = 20
    max_pairs: int | None = None
    start_cube: tuple[tuple[float, float], ...] = START_CUBE
    start: Literal["cube", "fixed_point"] = "cube"

    def __post_init__(self):
        if not any(abs(self.dt - d) < 1e-12 for d in ALLOWED_DT):
            raise ValueError(f"dt={self.dt}; the map is defined for dt in {list(ALLOWED_DT)} s")
        if self.system not in ("original", "modified"):
            raise ValueError(f"system={self.system!r}; use 'original' or 'modified'")
        if self.n_chunks < 1 or self.chunk_time <= self.dt or self.transient < 0:
            raise ValueError(
                f"n_chunks={self.n_chunks}, chunk_time={self.chunk_time}, transient={self.transient}; pass at least "
                "one chunk, a chunk longer than the time step and a transient >= 0 (e.g. 100, 20.0, 100.0)"
            )
        lo, hi = self.v_s_range
        if not lo < hi:
            raise ValueError(f"v_s_range={self.v_s_range}; pass (low, high) with low < high, e.g. (-40, -30)")
        if len(self.start_cube) != 3 or any(len(r) != 2 or not r[0] < r[1] for r in self.start_cube):
            raise ValueError(
                f"start_cube={self.start_cube}; pass three (low, high) ranges for V, n, S, e.g. {START_CUBE}"
            )
        if self.start not in ("cube", "fixed_point"):
            raise ValueError(f"start={self.start!r}; use 'cube' or 'fixed_point'")
        if self.min_distance <= 0:
            raise ValueError(f"min_distance={self.min_distance}; pass a positive scaled distance, e.g. 1.0")


#: units of the scaled distance to the fixed point: V / 10 mV, n / 0.01, S / 0.01
DISTANCE_SCALE = np.array([10.0, 0.01, 0.01])


def _scaled_distance(u, u_star):
    return jnp.linalg.norm((u - u_star) / jnp.asarray(DISTANCE_SCALE, dtype=u.dtype), axis=-1)


def _starts_near_fixed_point(rng: np.random.Generator, u_star: np.ndarray, radius: float) -> np.ndarray:
    """Random states around each row of ``u_star`` (n, 3): a uniform direction and a scaled distance uniform in
    [0, ``radius``] (denser toward u* than uniform in the ball, whose volume is mostly near its surface)."""
    direction = rng.normal(size=u_star.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    r = radius * rng.uniform(size=(u_star.shape[0], 1))
    return u_star + r * direction * DISTANCE_SCALE


def make_map_dataset(
    config: MapDataConfig | Sequence[MapDataConfig] = MapDataConfig(), *, progress: bool = False
) -> xr.Dataset:
    """Simulate the chunks and return the standardised pairs as an xarray Dataset (see module docstring).

    ``config`` may be a sequence of parts of one system and dt (e.g. attractor chunks after a transient plus short
    chunks of the fast transients from the start cube): each part is simulated with its own settings and seed and
    subsampled to its own ``max_pairs``, then all pairs are standardised together (eq. 10; with the constants of the
    ``start="cube"`` parts) and the chunks numbered on.

    Runs in float64 (``jax.enable_x64`` inside) with Diffrax Tsit5 at ``config.rtol`` (accuracy-limited at this
    tolerance; it agrees with the stiff Kvaerno5 to ~1e-5 mV over 120 s and is ten times faster).
    """
    parts = (config,) if isinstance(config, MapDataConfig) else tuple(config)
    if not parts or len({(c.system, c.dt) for c in parts}) != 1:
        systems = [(c.system, c.dt) for c in parts]
        raise ValueError(f"parts {systems}; pass at least one MapDataConfig, all of one system and dt")
    if all(c.start != "cube" for c in parts):
        raise ValueError("every part starts at the fixed point; add a start='cube' part (it sets the eq. 10 constants)")
    first = parts[0]
    model = BetaCell.from_name(first.system)
    kept: list[tuple[np.ndarray, ...]] = []  # per part: u, v, p, chunk of the kept pairs
    every_u, every_p, v_s_parts = [], [], []  # all simulated pairs' u and p (the eq. 10 constants), V_S per chunk
    near_parts = []  # per chunk: started near the fixed point (start="fixed_point")
    n_before = 0  # chunks of the earlier parts: the chunk numbers go on across parts
    for cfg in parts:
        traj, v_s, rng = _simulate_chunks(model, cfg, progress)  # (C, S + 1, 3), (C,)
        steps = traj.shape[1] - 1
        u, v = traj[:, :-1].reshape(-1, 3), traj[:, 1:].reshape(-1, 3)
        p = np.repeat(v_s, steps)[:, None]
        chunk = np.repeat(np.arange(len(v_s)) + n_before, steps).astype(np.int32)
        n_before += len(v_s)
        if cfg.start == "cube":  # the eq. 10 constants: the cube parts only (see MapDataConfig.start)
            every_u.append(u), every_p.append(p)
        v_s_parts.append(v_s)
        near_parts.append(np.full(len(v_s), cfg.start == "fixed_point"))
        if cfg.max_pairs is not None and cfg.max_pairs < u.shape[0]:
            keep = np.sort(rng.permutation(u.shape[0])[: cfg.max_pairs])
            u, v, p, chunk = u[keep], v[keep], p[keep], chunk[keep]
        kept.append((u, v, p, chunk))
    u, v, p, chunk = (np.concatenate(x) for x in zip(*kept, strict=True))
    v_s = np.concatenate(v_s_parts)
    every_u, every_p = np.concatenate(every_u), np.concatenate(every_p)
    m_u, s_u = every_u.mean(axis=0), every_u.std(axis=0)
    m_p, s_p = every_p.mean(axis=0), every_p.std(axis=0)

    def per_part(name):  # a setting as a scalar for one part, as a list over the parts otherwise (None stored as -1)
        values = [-1 if getattr(c, name) is None else getattr(c, name) for c in parts]
        return values[0] if len(parts) == 1 else values

    ds = xr.Dataset(
        {
            "p": (("sample", "param"), ((p - m_p) / s_p).astype(np.float32)),
            "u": (("sample", "var"), ((u - m_u) / s_u).astype(np.float32)),
            "v": (("sample", "var"), ((v - m_u) / s_u).astype(np.float32)),
            # the increment (v - u) / s_u from the float64 trajectories: the difference of the float32 u and v would
            # lose the small increments of S (dt / tau_S ~ 1.4e-4 of its range per step) to rounding
            "du": (("sample", "var"), ((v - u) / s_u).astype(np.float32)),
            "chunk": (("sample",), chunk),
            "V_S": (("chunk_index",), v_s),
            "fixed_point_start": (("chunk_index",), np.concatenate(near_parts)),
            "m_u": (("var",), m_u),
            "s_u": (("var",), s_u),
            "m_p": (("param",), m_p),
            "s_p": (("param",), s_p),
        },
        coords={"var": list(STATE_NAMES), "param": ["V_S"]},
        attrs={
            "dt": first.dt,
            "system": first.system,
            "g_K2": model.g_K2,
            "transient": per_part("transient"),
            "chunk_time": per_part("chunk_time"),
            "n_chunks": per_part("n_chunks"),
            "seed": per_part("seed"),
            "max_pairs": per_part("max_pairs"),
            "start_cube": [list(r) for r in first.start_cube],
            "start": per_part("start"),
            "v_s_range": list(first.v_s_range),
            "units": {"V": "mV", "n": "1", "S": "1", "V_S": "mV", "dt": "s"},
            "description": "standardised (p, u(t), u(t+dt)) pairs of the beta-cell ODE (seed 003 eq. 10)",
        },
    )
    ds["V_S"].attrs["units"] = "mV"
    return ds


def _simulate_chunks(model: BetaCell, config: MapDataConfig, progress: bool):
    """The chunks of one part: trajectories (C, S + 1, 3) in float64, their V_S (C,), and the part's generator
    (drawn on for the max_pairs subset)."""
    rng = np.random.default_rng(config.seed)
    steps = int(round(config.chunk_time / config.dt))
    chunks: list[np.ndarray] = []
    v_s_list: list[float] = []
    progress_bar = None
    if progress:
        from rich.progress import Progress

        progress_bar = Progress(transient=True)
        progress_bar.start()
        task = progress_bar.add_task(
            f"simulating {config.n_chunks} chunks ({config.system}, dt={config.dt})", total=config.n_chunks
        )
    try:
        with jax.enable_x64(True):
            ts = config.transient + jnp.arange(steps + 1) * config.dt
            fp = jax.jit(jax.vmap(lambda p: fixed_point(model, p)))
            attempts = 0
            while len(chunks) < config.n_chunks:
                attempts += 1
                if attempts > 20 * (config.n_chunks // config.batch + 1):
                    raise RuntimeError("could not draw enough oscillating chunks; widen v_s_range or check the model")
                nb = config.batch
                v_s = rng.uniform(*config.v_s_range, size=nb)
                lo = np.array([c[0] for c in config.start_cube])
                hi = np.array([c[1] for c in config.start_cube])
                u_star = np.asarray(fp(jnp.asarray(v_s)))
                if config.start == "fixed_point":
                    u0 = _starts_near_fixed_point(rng, u_star, config.min_distance)
                    far = np.ones(nb, dtype=bool)
                else:
                    u0 = lo + (hi - lo) * rng.uniform(size=(nb, 3))
                    far = np.asarray(_scaled_distance(jnp.asarray(u0), jnp.asarray(u_star))) > config.min_distance
                traj = np.asarray(
                    solve(
                        model,
                        jnp.asarray(u0[far]),
                        jnp.asarray(v_s[far]),
                        ts,
                        t0=0.0,
                        rtol=config.rtol,
                        atol=config.rtol * 1e-2,
                        solver=diffrax.Tsit5(),
                    )
                )
                ok = np.isfinite(traj).all(axis=(1, 2))
                if config.start == "cube":  # resting chunks are redrawn (the fixed-point part keeps them)
                    ok &= np.ptp(traj[:, :, 0], axis=1) > 1.0
                for tr, p in zip(traj[ok], v_s[far][ok], strict=True):
                    if len(chunks) < config.n_chunks:
                        chunks.append(tr)
                        v_s_list.append(float(p))
                if progress_bar is not None:
                    progress_bar.update(task, completed=len(chunks))
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    return np.stack(chunks), np.asarray(v_s_list), rng


def _fixed_point_chunks(ds: xr.Dataset) -> np.ndarray:
    """Boolean mask (chunk_index,): the chunks started near the fixed point (all False for stores without the flag)."""
    if "fixed_point_start" not in ds:
        return np.zeros(ds.sizes["chunk_index"], dtype=bool)
    return ds["fixed_point_start"].values.astype(bool)


def fixed_point_pairs(ds: xr.Dataset) -> np.ndarray:
    """Boolean mask (sample,): the pairs of chunks started near the fixed point (``start="fixed_point"``); all False
    for data without such a part (and stores written before the flag existed)."""
    return _fixed_point_chunks(ds)[ds["chunk"].values]


def save_map_dataset(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the pairs to a Zarr store (atomic)."""
    return save_dataset(ds, path, kind=KIND, overwrite=overwrite)


def load_map_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Load and validate a store written by :func:`save_map_dataset`."""
    return load_dataset(
        path,
        kind=KIND,
        variables=("p", "u", "v", "m_u", "s_u", "m_p", "s_p"),
        dims=("sample", "var", "param"),
    )


def pairs_arrays(ds: xr.Dataset, *, target: Literal["state", "increment"] = "state") -> tuple[jnp.ndarray, ...]:
    """Standardised float32 arrays for :func:`~neurosurrogate.surrogates.training.train`.

    ``target="state"``: ``(p, u, v)`` with v = u(t + dt). ``target="increment"``: ``(p, u, du)`` with the increment
    du = (u(t + dt) - u(t)) / s_u (the stored float64-accurate one; stores written before it existed fall back to
    v - u).
    """
    if target not in ("state", "increment"):
        raise ValueError(f"target={target!r}; use 'state' or 'increment'")
    p, u = (jnp.asarray(ds[name].values, dtype=jnp.float32) for name in ("p", "u"))
    if target == "state":
        return p, u, jnp.asarray(ds["v"].values, dtype=jnp.float32)
    if "du" in ds:
        du = ds["du"].values
    else:
        du = ds["v"].values.astype(np.float64) - ds["u"].values.astype(np.float64)
    return p, u, jnp.asarray(du, dtype=jnp.float32)


@functools.lru_cache(maxsize=8)
def _flow_derivative_fns(system: str, dt: float, order: int):
    """Jitted, vmapped dG/dw (and d^2G/dw^2) of the exact flow's standardised increment (see flow_derivatives)."""
    model = BetaCell.from_name(system)

    def increment(w, m_u, s_u, m_p, s_p):
        n_u = m_u.shape[0]
        x = m_u + w[:n_u] * s_u
        return (flow_step(model, x, m_p[0] + w[n_u] * s_p[0], dt) - x) / s_u

    in_axes = (0, None, None, None, None)
    fns = [jax.jit(jax.vmap(jax.jacfwd(increment), in_axes=in_axes))]
    if order == 2:
        fns.append(jax.jit(jax.vmap(jax.jacfwd(jax.jacfwd(increment)), in_axes=in_axes)))
    return tuple(fns)


def flow_derivatives(ds: xr.Dataset, *, order: int = 1, batch: int = 10_000) -> tuple[np.ndarray, ...]:
    """Derivatives of the exact one-step flow at every pair, for derivative-matching ("Sobolev") training.

    With w = (z, q) the standardised state and parameter of a pair (the map's inputs, eq. 10) and
    G(w) = (Phi_dt(u, V_S) - u) / s_u the standardised increment of the exact flow map Phi_dt (``flow_step``, float64),
    returns ``(J,)`` with J = dG/dw of shape (sample, var, var + param), and for ``order=2`` also the Hessian
    H = d^2 G / dw^2 of shape (sample, var, var + param, var + param), both float32. These are the targets of
    :func:`~neurosurrogate.surrogates.recurrent_map.sobolev_mse`; they use only the training points themselves
    (on the attractor), not the fixed point.
    """
    if order not in (1, 2):
        raise ValueError(f"order={order}; pass 1 (Jacobian) or 2 (Jacobian and Hessian)")
    u = np.asarray(ds["u"].values, dtype=np.float64)
    p = np.asarray(ds["p"].values, dtype=np.float64)
    if not (np.isfinite(u).all() and np.isfinite(p).all()):
        raise ValueError("the pairs contain NaN or inf; rebuild the dataset with make_map_dataset")
    fns = _flow_derivative_fns(str(ds.attrs["system"]), float(ds.attrs["dt"]), order)
    outs: list[list[np.ndarray]] = [[] for _ in fns]
    w_all = np.concatenate([u, p], axis=1)
    with jax.enable_x64(True):
        consts = tuple(jnp.asarray(ds[k].values, dtype=jnp.float64) for k in ("m_u", "s_u", "m_p", "s_p"))
        for i in range(0, len(w_all), batch):
            w = jnp.asarray(w_all[i : i + batch])
            for k, fn in enumerate(fns):
                outs[k].append(np.asarray(fn(w, *consts), dtype=np.float32))
    return tuple(np.concatenate(o) for o in outs)


def fixed_point_separation(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """How far the training data stay from the ODE's fixed point (seed 003 Fig. 6b,c), per chunk.

    Returns arrays over the chunks, sorted by V_S: ``V_S``; ``min_distance``, the smallest Euclidean distance in
    physical units (V mV, n, S) from the chunk's fixed point to the chunk's stored points (a subset of the chunk when
    the store keeps ``max_pairs``); ``S_min``, ``S_max``, the chunk's range of S; ``S_star``, the fixed point's S and
    ``S_star_standardised``, the same in the data's standardised units (eq. 10); ``S_headroom``, how far the chunk's S
    reaches beyond the fixed point's, (S_max - S_star) / s_S (negative: the fixed point's S lies above all of the
    chunk's data, so the map extrapolates in S there). Chunks of a fixed-point part (``start="fixed_point"``) are
    left out: they start next to u* by design.
    """
    model = BetaCell.from_name(ds.attrs["system"])
    m_u, s_u = ds["m_u"].values, ds["s_u"].values
    u = ds["u"].values.astype(np.float64) * s_u + m_u
    chunk = ds["chunk"].values
    v_s = ds["V_S"].values.astype(np.float64)
    with jax.enable_x64(True):
        u_star = np.asarray(jax.jit(jax.vmap(lambda p: fixed_point(model, p)))(jnp.asarray(v_s)))
    near = _fixed_point_chunks(ds)
    by_chunk = np.argsort(chunk, kind="stable")
    bounds = np.searchsorted(chunk[by_chunk], np.arange(len(v_s) + 1))
    keep, dist, s_min, s_max = [], [], [], []
    for c in np.flatnonzero(~near):
        pts = u[by_chunk[bounds[c] : bounds[c + 1]]]
        if len(pts):  # a chunk may have lost all its pairs to the max_pairs subset
            keep.append(c)
            dist.append(np.linalg.norm(pts - u_star[c], axis=1).min())
            s_min.append(pts[:, 2].min())
            s_max.append(pts[:, 2].max())
    order = np.argsort(v_s[keep])
    keep_arr = np.asarray(keep)[order]
    s_max_sorted = np.asarray(s_max)[order]
    return {
        "V_S": v_s[keep_arr],
        "min_distance": np.asarray(dist)[order],
        "S_min": np.asarray(s_min)[order],
        "S_max": s_max_sorted,
        "S_star": u_star[keep_arr, 2],
        "S_star_standardised": (u_star[keep_arr, 2] - m_u[2]) / s_u[2],
        "S_headroom": (s_max_sorted - u_star[keep_arr, 2]) / s_u[2],
    }
