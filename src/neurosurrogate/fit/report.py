"""Run-folder outputs of a population fit: loss curves, parameter distributions, traces, best parameters, report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..experiments._run import RunFolder  # noqa: E402
from ..report.html import write_report  # noqa: E402
from .population import FitResult, Measurements, _template  # noqa: E402


def good_members(result: FitResult, factor: float = 2.0) -> np.ndarray:
    """Indices of the 'good' members: finite selection loss at most ``factor`` times the best one."""
    loss = result.selection_loss
    best = loss[result.best]
    return np.flatnonzero(np.isfinite(loss) & (loss <= factor * best + 1e-12))


def plot_losses(result: FitResult, path) -> None:
    """Per-member train loss curves (log scale) and the final test losses."""
    fig, axes = plt.subplots(1, 2 if result.test_loss is not None else 1, figsize=(11, 4), squeeze=False)
    ax = axes[0, 0]
    hist = np.where(np.isfinite(result.train_history), result.train_history, np.nan)
    ax.plot(hist, lw=0.6, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("train loss")
    ax.set_title(f"{hist.shape[1]} members")
    if result.test_loss is not None:
        ax = axes[0, 1]
        finite = result.test_loss[np.isfinite(result.test_loss)]
        ax.hist(np.log10(finite), bins=30, color="#3a6ea5")
        ax.set_xlabel("log10 final test loss")
        ax.set_ylabel("members")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_parameters(result: FitResult, path, target=None, members=None) -> None:
    """Box plots of the good members' parameters divided by the target (else normalised to the init range).

    (Thesis figures 4.5, 4.7, 4.9.) Each free leaf gives one box (values pooled over its neurons/synapses).
    """
    space = result.problem.space
    members = good_members(result) if members is None else members
    values = space.named_values(result.models)
    tvals = space.named_values(target) if target is not None else {}
    names = space.free_names
    data, stars = [], []
    for name in names:
        i = space.paths.index(name)
        t = tvals.get(name)
        if t is not None and np.all(np.abs(t) > 1e-12):
            # normalised by the target (thesis figs. 4.5, 4.7, 4.9): the target sits at 1
            x = values[name][members] / t
            star = np.ones(t.size)
        else:
            lo, hi = space.init_low[i], space.init_high[i]
            width = np.where(hi > lo, hi - lo, 1.0)
            x = (values[name][members] - lo) / width
            star = None if t is None else ((t - lo) / width).reshape(-1)
        data.append(np.asarray(x).reshape(-1))
        stars.append(star)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 4.5))
    ax.boxplot(data, showfliers=False)
    for k, s in enumerate(stars):
        if s is not None:
            ax.plot(np.full(s.shape, k + 1), s, "r*", ms=9)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=75, fontsize=8)
    ax.set_ylabel("value / target" if tvals else "(value - init low) / init width")
    spread = max((float(np.max(np.abs(d))) for d in data if d.size), default=1.0)
    if tvals and spread > 20:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(f"parameters of the {len(members)} good members (red: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def best_traces(result: FitResult, data: Measurements, model=None):
    """(V, Ca) of a member (default: the best) on the stimuli of ``data``, shapes (stimulus, samples, neuron)."""
    from ..simulate import _run

    problem = result.problem
    model = result.member(result.best) if model is None else model
    inputs, record = problem.indices()

    def one(cur):
        v, ca, _, _ = _run(model, cur, problem.dt, None, inputs, record, problem.stride, problem.solver)
        return v, ca

    v, ca = jax.jit(jax.vmap(one))(np.asarray(data.currents))
    return np.asarray(v), None if ca is None else np.asarray(ca)


def plot_traces(
    result: FitResult, data: Measurements, path, title: str, clean: Measurements | None = None
) -> None:
    """Best member (blue) against the target (red) for every stimulus; calcium in a second row when fitted."""
    v, ca = best_traces(result, data)
    s = v.shape[0]
    rows = 3 if (ca is not None and data.Ca is not None and result.problem.w_ca) else 2
    fig, axes = plt.subplots(rows, s, figsize=(3.2 * s, 2.2 * rows), squeeze=False, sharex=True)
    t = np.arange(v.shape[1]) * result.problem.dt * result.problem.stride
    for j in range(s):
        ax = axes[0, j]
        ax.plot(t, data.V[j], color="tab:red", lw=0.6, alpha=0.7)
        ax.plot(t, v[j], color="tab:blue", lw=0.9)
        ax.set_title(f"stimulus {j}", fontsize=9)
        if rows == 3:
            axes[1, j].plot(t, data.Ca[j], color="tab:red", lw=0.6, alpha=0.7)
            axes[1, j].plot(t, ca[j], color="tab:blue", lw=0.9)
        cur = np.asarray(data.currents[j])
        tc = np.arange(cur.shape[0]) * result.problem.dt
        axes[-1, j].plot(tc, cur, color="navy", lw=0.7)
        axes[-1, j].set_xlabel("t (ms)")
    axes[0, 0].set_ylabel("V (mV)")
    if rows == 3:
        axes[1, 0].set_ylabel("Ca")
    axes[-1, 0].set_ylabel("I (uA/cm2)")
    fig.suptitle(title + " (red: target, blue: best member)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fit_metrics(result: FitResult, threshold: float | None = None) -> dict[str, Any]:
    """Summary numbers of a fit (JSON-ready)."""
    sel = result.selection_loss
    m: dict[str, Any] = {
        "population": int(result.settings.population),
        "iterations": int(result.settings.iterations),
        "free_parameters": result.problem.space.size,
        "best_member": result.best,
        "best_train_loss": float(result.train_loss[result.best]),
        "best_test_loss": None if result.test_loss is None else float(result.test_loss[result.best]),
        "median_selection_loss": float(np.median(sel[np.isfinite(sel)]))
        if np.isfinite(sel).any()
        else math.inf,
        "redraws_total": int(result.redraws.sum()),
        "members_redrawn": int((result.redraws > 0).sum()),
        "restarts_total": int(result.restarts.sum()) if result.restarts is not None else 0,
        "good_members": int(len(good_members(result))),
        "wall_time_s": float(result.wall_time),
        "devices": len(result.u[0].sharding.device_set) if hasattr(result.u[0], "sharding") else 1,
        "resumed_from_iteration": result.resumed_from,
    }
    if threshold is not None:
        m["loss_threshold"] = threshold
        m["members_below_threshold"] = int((sel < threshold).sum())
    return m


def write_fit_run(
    run: RunFolder,
    result: FitResult,
    *,
    title: str,
    target=None,
    threshold: float | None = None,
    extra_metrics: Mapping[str, Any] | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """Write figures, best_params.json, metrics.json and report.html of a fit into ``run``; return the metrics."""
    metrics = fit_metrics(result, threshold)
    if extra_metrics:
        metrics.update(extra_metrics)
    plot_losses(result, run.figure("losses"))
    plot_parameters(result, run.figure("parameters"), target=target)
    plot_traces(result, result.problem.train, run.figure("best_train"), "train")
    figures = [
        ("per-member train loss and final test losses", run.figure("losses")),
        ("parameters of the good members, normalised to the initialisation range", run.figure("parameters")),
        ("best member vs target, train stimuli", run.figure("best_train")),
    ]
    if result.problem.test is not None:
        plot_traces(result, result.problem.test, run.figure("best_test"), "test")
        figures.append(("best member vs target, test stimuli", run.figure("best_test")))
    best = result.best_parameters()
    run.write_json("best_params.json", best)
    run.write_json("member_losses.json", {"train": result.train_loss, "test": result.test_loss,
                                          "redraws": result.redraws})
    if target is not None:
        run.write_json(
            "target_params.json",
            {k: np.asarray(v).tolist() for k, v in result.problem.space.named_values(target).items()},
        )
    run.write_metrics(metrics)
    small = {
        k: (v[0] if isinstance(v, list) and len(v) == 1 else f"[{len(v)} values]") for k, v in best.items()
    }
    sections = [("Metrics", metrics), ("Figures", figures), ("Best parameters", small)]
    if notes:
        sections.insert(0, ("Notes", f"<p>{notes}</p>"))
    write_report(
        run.path / "report.html",
        title,
        sections,
        footer=f"template: {type(_template(result.problem.space)).__name__}",
    )
    return metrics
