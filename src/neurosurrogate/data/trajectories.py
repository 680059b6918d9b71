"""Trajectories <-> xarray Datasets (dims sample, time, channel)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._errors import bad_value


def trajectory_to_dataset(
    traj,
    *,
    attrs: Mapping[str, Any] | None = None,
    sample_labels: Sequence[str] | None = None,
) -> xr.Dataset:
    """Convert a :class:`~neurosurrogate.simulate.Trajectory` with a leading sample axis (or none) to a Dataset.

    Variables: ``V`` (sample, time, channel) mV, ``Ca`` (if present), ``current`` (sample, time, input) uA/cm2.
    Attributes: ``dt`` (integration step, ms), ``sample_dt`` (ms), units, plus ``attrs``.
    """
    v = np.asarray(traj.V)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise bad_value("trajectory V shape", v.shape, "expected (time, channel) or (sample, time, channel)")
    cur = np.asarray(traj.current)
    if cur.ndim == 2:
        cur = np.broadcast_to(cur[None], (v.shape[0], *cur.shape))
    coords = {
        "sample": np.arange(v.shape[0]),
        "time": ("time", traj.time, {"units": "ms"}),
        "channel": list(traj.channels),
        "input": list(traj.inputs),
    }
    data = {
        "V": (("sample", "time", "channel"), v, {"units": "mV", "long_name": "membrane potential"}),
        "current": (("sample", "time", "input"), cur, {"units": "uA/cm2", "long_name": "input current"}),
    }
    if traj.Ca is not None:
        ca = np.asarray(traj.Ca)
        data["Ca"] = (("sample", "time", "channel"), ca.reshape(v.shape), {"units": "a.u.", "long_name": "calcium"})
    if sample_labels is not None:
        coords["label"] = ("sample", list(sample_labels))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"dt": traj.dt, "sample_dt": traj.sample_dt, "time_units": "ms", **dict(attrs or {})})
    return ds
