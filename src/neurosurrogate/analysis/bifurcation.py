"""Bifurcation diagrams with inheritance and window alignment, regime classification and basin fractions (seed 003).

A diagram is computed by moving along the control parameter: each V_S starts from the final state of the previous one
(inheritance), drops a transient, records twice the window length and keeps the window with the smallest Euclidean
distance to the window kept at the previous V_S (alignment), so bursts line up across the diagram. For a bistable
system two branches are followed from a start point, once leftwards and once rightwards.

The simulator is abstract: ``run(u0, V_S, n_steps) -> (n_steps + 1, 3)`` states at a fixed sampling step, so the same
code draws diagrams for the ODE (Diffrax) and for the map (iteration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import find_peaks

__all__ = [
    "BifurcationDiagram",
    "bifurcation_diagram",
    "classify_regime",
    "fraction_to_fixed_point",
    "transition_point",
    "two_branch_diagram",
]

Runner = Callable[[np.ndarray, float, int], np.ndarray]


@dataclasses.dataclass
class BifurcationDiagram:
    """Aligned windows along V_S.

    Attributes:
        v_s: control parameter values, mV, shape (k,), increasing.
        windows: states on the windows, shape (k, window, 3).
        dt: sampling step, s.
        regimes: ``"rest"``, ``"bursting"`` or ``"spiking"`` per V_S.
    """

    v_s: np.ndarray
    windows: np.ndarray
    dt: float
    regimes: list[str]


def classify_regime(V: np.ndarray, dt: float, *, rest_ptp: float = 1.0, burst_ratio: float = 3.0) -> str:
    """``"rest"`` if V varies by less than ``rest_ptp`` mV; else ``"bursting"`` if the longest interspike interval
    exceeds ``burst_ratio`` times the median one (a silent phase between bursts), else ``"spiking"``."""
    V = np.asarray(V)
    if not np.isfinite(V).all():
        return "diverged"
    if np.ptp(V) < rest_ptp:
        return "rest"
    peaks, _ = find_peaks(V, prominence=2.0)
    if len(peaks) < 3:
        # fewer than three spikes in the window: a long silent phase (or a very slow oscillation)
        return "bursting"
    isi = np.diff(peaks) * dt
    return "bursting" if isi.max() > burst_ratio * np.median(isi) else "spiking"


def _align(long: np.ndarray, prev: np.ndarray, window: int, scale: np.ndarray, stride: int = 1) -> np.ndarray:
    """The window of ``long`` (offsets in steps of ``stride``) with the smallest Euclidean distance to ``prev``."""
    b = prev[::stride] / scale
    offsets = range(0, long.shape[0] - window + 1, stride)
    dists = [np.sum((long[k : k + window : stride] / scale - b) ** 2) for k in offsets]
    k = offsets[int(np.argmin(dists))]
    return long[k : k + window]


def bifurcation_diagram(
    run: Runner,
    v_s_values: Sequence[float],
    u_start: np.ndarray,
    *,
    dt: float,
    transient_steps: int,
    window_steps: int,
    align: bool = True,
    align_stride: int = 1,
    progress: bool = False,
    label: str = "bifurcation diagram",
) -> BifurcationDiagram:
    """Follow V_S in the given order with inheritance (and alignment of the windows).

    Args:
        run: simulator ``run(u0 (3,), V_S, n_steps) -> states (n_steps + 1, 3)`` at step ``dt``.
        v_s_values: control parameters in the order to visit, mV.
        u_start: initial state for the first value (3,).
        dt: sampling step of ``run``, s.
        transient_steps: steps dropped at each V_S.
        window_steps: steps kept; 2 x this many are recorded to choose the aligned window.
        align: choose windows by minimal distance to the previous one (else the first window is kept).
        align_stride: subsample the windows by this factor when searching the offset (speed).
        progress: Rich progress bar.

    Returns:
        A :class:`BifurcationDiagram` sorted by increasing V_S.
    """
    u = np.asarray(u_start, dtype=float)
    if u.shape != (3,):
        raise ValueError(f"u_start has shape {u.shape}; pass one state (V, n, S) of shape (3,)")
    windows, regimes, prev = [], [], None
    scale = np.array([10.0, 0.01, 0.01])
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(label, total=len(v_s_values))
    try:
        for vs in v_s_values:
            traj = np.asarray(run(u, float(vs), transient_steps + 2 * window_steps))
            long = traj[transient_steps:]
            if align and prev is not None:
                win = _align(long, prev, window_steps, scale, align_stride)
            else:
                win = long[:window_steps]
            windows.append(win)
            regimes.append(classify_regime(win[:, 0], dt))
            prev = win
            u = traj[-1]
            if not np.isfinite(u).all():
                u = np.asarray(u_start, dtype=float)
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    v = np.asarray(v_s_values, dtype=float)
    order = np.argsort(v)
    return BifurcationDiagram(v[order], np.stack(windows)[order], dt, [regimes[i] for i in order])


def two_branch_diagram(
    run: Runner, v_s_grid: Sequence[float], u_start: np.ndarray, v_s_start: float, **kwargs
) -> BifurcationDiagram:
    """Diagram from ``v_s_start`` leftwards, then from ``v_s_start`` rightwards (both inheriting from ``u_start``)."""
    grid = np.sort(np.asarray(v_s_grid, dtype=float))
    left = grid[grid <= v_s_start][::-1]
    right = grid[grid > v_s_start]
    d1 = bifurcation_diagram(run, left, u_start, **kwargs)
    if len(right) == 0:
        return d1
    # continue rightwards from the state that the start value produced
    d2 = bifurcation_diagram(run, np.concatenate([[left[0]], right]), u_start, **kwargs)
    v = np.concatenate([d1.v_s, d2.v_s[1:]])
    w = np.concatenate([d1.windows, d2.windows[1:]])
    r = d1.regimes + d2.regimes[1:]
    order = np.argsort(v)
    return BifurcationDiagram(v[order], w[order], d1.dt, [r[i] for i in order])


def transition_point(v_s: np.ndarray, regimes: Sequence[str], *, left: str = "bursting", right: str = "spiking"):
    """V_S of the ``left`` -> ``right`` transition: midpoint between the last ``left`` value and the first value of the
    ``right`` run that extends to the end of the grid (None if there is no such transition)."""
    v_s = np.asarray(v_s)
    r = list(regimes)
    k = len(r)
    while k > 0 and r[k - 1] == right:
        k -= 1
    if k == len(r) or k == 0 or r[k - 1] != left:
        return None
    return float(0.5 * (v_s[k - 1] + v_s[k]))


def stable_interval(v_s: np.ndarray, max_real: np.ndarray) -> tuple[float, float] | None:
    """The V_S interval (endpoints interpolated linearly) where ``max_real`` (largest Re mu) is negative."""
    v_s, mr = np.asarray(v_s, dtype=float), np.asarray(max_real, dtype=float)
    neg = np.where(mr < 0)[0]
    if len(neg) == 0:
        return None
    i0, i1 = neg[0], neg[-1]

    def cross(i, j):
        return float(v_s[i] + (v_s[j] - v_s[i]) * (0 - mr[i]) / (mr[j] - mr[i]))

    lo = cross(i0 - 1, i0) if i0 > 0 else float(v_s[0])
    hi = cross(i1, i1 + 1) if i1 + 1 < len(v_s) else float(v_s[-1])
    return lo, hi


def fraction_to_fixed_point(final_states: np.ndarray, u_star: np.ndarray, *, tol: float = 0.1) -> float:
    """Fraction of final states within ``tol`` (scaled distance: V/10 mV, n/0.01, S/0.01) of the fixed point."""
    scale = np.array([10.0, 0.01, 0.01])
    d = np.linalg.norm((np.asarray(final_states) - np.asarray(u_star)) / scale, axis=-1)
    return float(np.mean(d < tol))


def random_starts(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` random states in the paper's cube V [-70, -10] mV, n [0, 0.12], S [0.17, 0.2], shape (n, 3)."""
    rng = np.random.default_rng(seed)
    lo = np.array([-70.0, 0.0, 0.17])
    hi = np.array([-10.0, 0.12, 0.2])
    return lo + (hi - lo) * rng.uniform(size=(n, 3))
