"""Matplotlib figures shared by commands and experiments (Agg backend, PNG files)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def plot_traces(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    channels: Sequence[str] | None = None,
    max_samples: int = 4,
    title: str = "",
) -> Path:
    """Voltage, calcium (if present) and input current of up to ``max_samples`` samples of a trajectory Dataset.

    One column per sample; rows: V (mV), Ca, input current (uA/cm2).
    """
    channels = list(ds.channel.values) if channels is None else list(channels)
    n_samples = min(int(ds.sizes["sample"]), max_samples)
    rows = ["V"] + (["Ca"] if "Ca" in ds else []) + ["current"]
    fig, axes = plt.subplots(len(rows), n_samples, figsize=(4.2 * n_samples, 2.3 * len(rows) + 0.6),
                             sharex=True, squeeze=False)
    t = ds.time.values
    for j in range(n_samples):
        sample = ds.isel(sample=j)
        label = str(sample["label"].values) if "label" in sample.coords else f"sample {j}"
        for i, row in enumerate(rows):
            ax = axes[i, j]
            if row == "current":
                for name in ds.input.values:
                    ax.plot(t, sample["current"].sel(input=name).values, lw=1, label=str(name))
                ax.set_ylabel("I (uA/cm2)" if j == 0 else "")
            else:
                for name in channels:
                    ax.plot(t, sample[row].sel(channel=name).values, lw=1, label=str(name))
                ax.set_ylabel(("V (mV)" if row == "V" else "Ca (a.u.)") if j == 0 else "")
            if i == 0:
                ax.set_title(label, fontsize=10)
            ax.grid(alpha=0.3)
        axes[-1, j].set_xlabel("time (ms)")
    for i in range(len(rows)):
        handles, labels = axes[i, -1].get_legend_handles_labels()
        if labels:
            axes[i, -1].legend(handles, labels, fontsize=7, loc="upper right", ncol=1 + len(labels) // 6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_solver_stability(dts: Sequence[float], traces: dict[str, list[np.ndarray]], times: list[np.ndarray],
                          path: str | os.PathLike) -> Path:
    """Voltage traces of several solvers at several dt (thesis fig. 3.11)."""
    fig, axes = plt.subplots(1, len(dts), figsize=(4 * len(dts), 3), squeeze=False)
    for j, dt in enumerate(dts):
        ax = axes[0, j]
        for name, per_dt in traces.items():
            v = np.clip(per_dt[j], -200, 200)
            ax.plot(times[j], v, lw=1, label=name)
        ax.set_title(f"dt = {dt} ms", fontsize=10)
        ax.set_xlabel("time (ms)")
        ax.set_ylim(-210, 210)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("V (mV, clipped to +-200)")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
