"""Calcium-imaging input (ODYNN thesis 4.1): fluorescence traces from NWB files, the Hill relation, on/off currents.

Reading needs the optional ``pynwb`` package (extra ``[nwb]``). Any NWB file whose acquisition or processing modules
hold a ``TimeSeries`` (``RoiResponseSeries`` in ``Fluorescence``/``DfOverF`` included) works: pass the series name and,
for multi-ROI series, the ROI column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import atomic_path


def _pynwb():
    try:
        import pynwb
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("reading NWB files needs pynwb: pip install 'neurosurrogate[nwb]'") from err
    return pynwb


def write_fluorescence_nwb(
    path: str | os.PathLike,
    trace,
    sample_interval_ms: float,
    *,
    name: str = "AVA",
    unit: str = "dF/F",
    description: str = "",
) -> Path:
    """Write one fluorescence trace as a ``TimeSeries`` in the acquisition group of a new NWB file.

    Args:
        path: output ``.nwb`` file (replaced if it exists).
        trace: fluorescence samples, shape (time,).
        sample_interval_ms: time between two samples, ms (rate = 1000 / interval Hz).
        name: series name (conventionally the neuron).
        unit: unit string stored with the data.
        description: free text (e.g. "simulated CHH neuron").
    """
    import datetime as dt

    pynwb = _pynwb()
    trace = np.asarray(trace, float)
    if trace.ndim != 1 or trace.size < 2 or not np.isfinite(trace).all():
        raise ValueError(f"invalid trace: got shape {trace.shape}. Give a finite 1-D fluorescence trace")
    if not sample_interval_ms > 0:
        raise ValueError(
            f"invalid sample_interval_ms: got {sample_interval_ms!r}. Give a positive interval in ms"
        )
    nwb = pynwb.NWBFile(
        session_description=description or "fluorescence trace",
        identifier=f"neurosurrogate-{name}",
        session_start_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    nwb.add_acquisition(
        pynwb.TimeSeries(
            name=name,
            data=trace,
            unit=unit,
            rate=1000.0 / float(sample_interval_ms),
            starting_time=0.0,
            description=description,
        )
    )
    path = Path(path)
    with atomic_path(path) as tmp, pynwb.NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    return path


def _series(nwb, name: str | None):
    found = {}
    for key, obj in nwb.acquisition.items():
        found[key] = obj
    for module in nwb.processing.values():
        for iface in module.data_interfaces.values():
            inner = getattr(iface, "roi_response_series", None) or getattr(iface, "time_series", None)
            if inner:
                found.update(dict(inner))
            elif hasattr(iface, "data"):
                found[iface.name] = iface
    found = {k: v for k, v in found.items() if hasattr(v, "data")}
    if not found:
        raise ValueError("invalid NWB file: it holds no time series. Give a file with a fluorescence series")
    if name is None:
        if len(found) > 1:
            raise ValueError(f"invalid series: the file holds several ({sorted(found)}). Pass --series NAME")
        return next(iter(found.values()))
    if name not in found:
        raise ValueError(f"invalid series: got {name!r}. The file holds {sorted(found)}")
    return found[name]


def read_fluorescence_nwb(
    path: str | os.PathLike, series: str | None = None, roi: int = 0
) -> tuple[np.ndarray, float]:
    """Read a fluorescence trace and its sampling interval from an NWB file.

    Args:
        path: ``.nwb`` file.
        series: name of the time series (default: the only one).
        roi: column of a (time, roi) series.

    Returns:
        (trace of shape (time,), sample interval in ms).
    """
    pynwb = _pynwb()
    path = Path(path)
    if not path.exists():
        raise ValueError(f"invalid NWB path: {path} does not exist. Give an existing .nwb file")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ts = _series(nwb, series)
        data = np.asarray(ts.data[:], float)
        if ts.rate is not None:
            interval = 1000.0 / float(ts.rate)
        else:
            times = np.asarray(ts.timestamps[:], float)
            interval = float(np.median(np.diff(times))) * 1000.0
    if data.ndim == 2:
        if not 0 <= roi < data.shape[1]:
            raise ValueError(f"invalid roi: got {roi}. The series has {data.shape[1]} ROI columns")
        data = data[:, roi]
    if data.ndim != 1:
        raise ValueError(f"invalid series shape {data.shape}: expected (time,) or (time, roi)")
    finite = np.isfinite(data)
    if not finite.all():  # fill gaps by linear interpolation
        idx = np.arange(data.size)
        data = np.interp(idx, idx[finite], data[finite])
    return data, interval


def hill_fluorescence(ca, n: float = 3.8, k_d: float = 0.189):
    """Fluorescence of a calcium indicator, dF/F proportional to Ca^n / (Ca^n + k_d) (thesis eq. 4.1, GCaMP5K)."""
    ca = np.maximum(np.asarray(ca, float), 0.0)
    return ca**n / (ca**n + k_d)


def hill_calcium(f, n: float = 3.8, k_d: float = 0.189):
    """Inverse of :func:`hill_fluorescence` for 0 <= f < 1: Ca = (k_d f / (1 - f))^(1/n)."""
    f = np.clip(np.asarray(f, float), 0.0, 1.0 - 1e-9)
    return (k_d * f / (1.0 - f)) ** (1.0 / n)


def on_off_current(trace, *, on: float = 5.0, threshold: float | None = None, sigma_samples: float = 2.0):
    """An 'on/off' input current from a fluorescence trace, smoothed by a Gaussian (thesis 4.1, after Fuchs et al.).

    Args:
        trace: fluorescence, shape (time,).
        on: current of the 'on' state, uA/cm2 (the thesis tried values in [0.5, 10]).
        threshold: fluorescence separating off/on (default: halfway between the 5th and 95th percentiles).
        sigma_samples: standard deviation of the Gaussian kernel, in samples.

    Returns:
        The current, shape (time,), uA/cm2.
    """
    trace = np.asarray(trace, float)
    if threshold is None:
        lo, hi = np.percentile(trace, [5, 95])
        threshold = 0.5 * (lo + hi)
    box = on * (trace > threshold)
    if sigma_samples <= 0:
        return box
    half = int(np.ceil(4 * sigma_samples))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma_samples) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(box, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")
