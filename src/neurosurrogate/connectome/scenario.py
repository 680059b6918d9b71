"""Forward-crawling scenario check: intact vs AVB-ablated vs AVA-ablated network (the paper's validation).

One forward-crawling stimulus (PLM touch + AVB drive: steps from 100 to 400 ms of the window at the dataset's
peak amplitudes) is applied to three networks -- intact, AVBL/AVBR ablated, AVAL/AVAR ablated (synapses and
gap junctions removed) -- each with its own zero-input run. The stimulus-driven response (output minus that
condition's zero-input run), averaged over the stimulus, is reported per output; AVB ablation is expected to
abolish the B-motor-neuron (DB1, VB1) response, which is carried by the AVB -> B-type gap junctions, while AVA
ablation should leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ..experiments._run import RunFolder
from ..parallel import ProcessExecutor, run_tasks
from ..report.html import write_report
from ..stimuli import Step
from .build import build_network, require_neuron
from .dataset import DEFAULT_AMPLITUDES, FCMConfig, make_task, validate_names
from .fcm import Stimulus
from .worker import run_task

CONDITIONS = {"intact": (), "AVB ablated": ("AVBL", "AVBR"), "AVA ablated": ("AVAL", "AVAR")}


def run_scenario_check(
    out: str | Path,
    *,
    parameter_set: str = "D1",
    cells: tuple[str, ...] | None = None,
    dt: float = 0.1,
    warmup: float = 500.0,
    amplitudes: Mapping[str, float] = DEFAULT_AMPLITUDES,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Run the check, write a run folder (figure, metrics.json, report.html) and return the metrics.

    Args:
        out: run folder.
        parameter_set: c302 parameter set.
        cells: neuron subset (None: all 302; must contain AVAL, AVAR, AVBL, AVBR and the FCM neurons).
        dt: integration step, ms.
        warmup: zero-input warm-up, ms.
        amplitudes: peak current per input, nA.
        workers: worker processes.
        cache_dir: c302 build cache.
        log: progress messages.

    Returns:
        Metrics: ``response_mV[condition][output]`` (mean over 100-400 ms of output minus zero-input run) and
        ``change_vs_intact_mV``.
    """
    require_neuron()
    cfg = FCMConfig(
        samples=1,
        sample_dt=dt,
        dt=dt,
        duration=500.0,
        warmup=warmup,
        parameter_set=parameter_set,
        cells=cells,
        amplitudes=amplitudes,
    )
    build = build_network(cfg.c302, cache_dir=cache_dir, log=log)
    for abl in CONDITIONS.values():
        validate_names(abl, build, "ablation")
    validate_names(cfg.inputs + cfg.outputs, build, "inputs/outputs")
    stim = Stimulus(
        "step", {n: Step(amplitude=cfg.amplitudes[n], start=100.0, stop=400.0) for n in cfg.inputs}
    )
    cur = stim.render(cfg.inputs, cfg.duration, dt)
    tasks = []
    for cond, abl in CONDITIONS.items():
        tasks.append(make_task(f"{cond}|zero", build, cfg, np.zeros_like(cur), dt, abl))
        tasks.append(make_task(f"{cond}|stim", build, cfg, cur, dt, abl))
    results = {}
    with ProcessExecutor(workers) as ex:
        rep = run_tasks(
            ex,
            run_task,
            tasks,
            on_result=lambda i, r: results.__setitem__(r.key, r),
            on_failure=lambda i, e, f: log(f"{tasks[i].key} failed: {e}"),
        )
    if rep.failed:
        raise RuntimeError(f"scenario simulations failed: {rep.failed}")
    time_ms = np.arange(cur.shape[0]) * dt
    window = (time_ms >= 100.0) & (time_ms < 400.0)
    resp, traces = {}, {}
    for cond in CONDITIONS:
        d = results[f"{cond}|stim"].outputs - results[f"{cond}|zero"].outputs
        traces[cond] = (results[f"{cond}|stim"].outputs, d)
        resp[cond] = {o: float(d[window, j].mean()) for j, o in enumerate(cfg.outputs)}
    change = {
        c: {o: resp[c][o] - resp["intact"][o] for o in cfg.outputs} for c in CONDITIONS if c != "intact"
    }
    metrics = {
        "response_mV": resp,
        "change_vs_intact_mV": change,
        "parameter_set": parameter_set,
        "dt_ms": dt,
        "warmup_ms": warmup,
        "amplitudes_nA": dict(cfg.amplitudes),
        "stimulus": stim.to_dict(),
        "network_cells": len(build.cells),
    }
    run = RunFolder(
        out, {"command": "celegans-scenario", **{k: v for k, v in metrics.items() if "mV" not in k}}
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cfg.outputs), figsize=(4 * len(cfg.outputs), 6), sharex=True)
    for j, o in enumerate(cfg.outputs):
        for cond in CONDITIONS:
            axes[0, j].plot(time_ms, traces[cond][0][:, j], label=cond)
            axes[1, j].plot(time_ms, traces[cond][1][:, j], label=cond)
        axes[0, j].set_title(o)
        axes[0, j].axvspan(100, 400, color="0.92")
        axes[1, j].axvspan(100, 400, color="0.92")
        axes[1, j].set_xlabel("time in window (ms)")
    axes[0, 0].set_ylabel("soma voltage (mV)")
    axes[1, 0].set_ylabel("minus zero-input run (mV)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig_path = run.figure("fcm_ablation")
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)
    run.write_metrics(metrics)
    rows = "".join(
        f"<tr><th>{c}</th>" + "".join(f"<td>{resp[c][o]:+.2f}</td>" for o in cfg.outputs) + "</tr>"
        for c in CONDITIONS
    )
    table = (
        "<table><tr><th>condition</th>"
        + "".join(f"<th>{o}</th>" for o in cfg.outputs)
        + "</tr>"
        + rows
        + "</table><p>Mean of output minus the condition's zero-input run over the stimulus "
        + "(100-400 ms), mV.</p>"
    )
    write_report(
        run.path / "report.html",
        "C. elegans forward-crawling scenario check",
        [
            ("Responses", table),
            ("Figure", [("outputs under three conditions", fig_path)]),
            ("Configuration", {k: v for k, v in metrics.items() if "mV" not in k}),
        ],
    )
    return metrics
