"""Zarr stores for xarray Datasets: atomic writes and validated loads.

Every store the project writes carries the attribute ``neurosurrogate_format`` and a ``kind`` (for example
``"trajectories"``); a store without them, with missing variables or dimensions, or that zarr cannot read, is refused
with a message that says what is wrong and how to recreate it. Writes go to a temporary folder beside the target and
are renamed into place only when complete, so an interrupted write never leaves a partial store under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._io import atomic_folder, json_default

FORMAT_VERSION = 1
_MARKER = "neurosurrogate_format"


class DatasetError(ValueError):
    """A store on disk is missing, partial, corrupt or not of the expected structure."""


def _jsonable_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Zarr attributes must be JSON: nested objects are stored as JSON strings."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, default=json_default)
        elif isinstance(value, (np.floating, np.integer, np.bool_)):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def save_dataset(ds: xr.Dataset, path: str | os.PathLike, *, kind: str, overwrite: bool = False) -> Path:
    """Write ``ds`` to a Zarr store at ``path`` atomically.

    Args:
        ds: the dataset; attributes may hold dicts/lists (stored as JSON strings).
        path: target folder (conventionally ending in ``.zarr``).
        kind: what the store holds (checked by :func:`load_dataset`), e.g. ``"trajectories"``.
        overwrite: replace an existing store at ``path``.

    Returns:
        The final path.
    """
    path = Path(path)
    ds = ds.copy()
    ds.attrs = _jsonable_attrs({**ds.attrs, _MARKER: FORMAT_VERSION, "kind": kind})
    for name in list(ds.variables):
        ds[name].attrs = _jsonable_attrs(ds[name].attrs)
    with atomic_folder(path, overwrite=overwrite) as tmp:
        ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
    return path


def load_dataset(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    variables: Iterable[str] = (),
    dims: Iterable[str] = (),
    load: bool = True,
) -> xr.Dataset:
    """Open and validate a store written by :func:`save_dataset`.

    Args:
        path: the store folder.
        kind: expected ``kind`` attribute, if any.
        variables: data variables that must be present.
        dims: dimensions that must be present.
        load: load values into memory (and check them for NaN).

    Raises:
        DatasetError: missing, corrupt, partial or mis-structured store; the message names the problem and the fix.
    """
    path = Path(path)
    fix = "recreate it with the command that wrote it (e.g. `neurosurrogate simulate ... --out`)"
    if not path.exists():
        raise DatasetError(f"no dataset at {path}: the path does not exist; check the path or {fix}")
    if not path.is_dir():
        raise DatasetError(f"{path} is a file, not a Zarr store folder; {fix}")
    try:
        ds = xr.open_zarr(path, consolidated=None)
    except Exception as exc:  # zarr raises many different types for corrupt stores
        raise DatasetError(f"{path} is not a readable Zarr store ({type(exc).__name__}: {exc}); {fix}") from exc
    if _MARKER not in ds.attrs:
        raise DatasetError(f"{path} was not written by neurosurrogate or was interrupted (no '{_MARKER}'); {fix}")
    if kind is not None and ds.attrs.get("kind") != kind:
        raise DatasetError(f"{path} holds {ds.attrs.get('kind')!r} data, expected {kind!r}; pass the right store")
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise DatasetError(f"{path} lacks variables {missing} (has {sorted(ds.data_vars)}); {fix}")
    missing_dims = [d for d in dims if d not in ds.dims]
    if missing_dims:
        raise DatasetError(f"{path} lacks dimensions {missing_dims} (has {sorted(ds.dims)}); {fix}")
    if load:
        try:
            ds = ds.load()
        except Exception as exc:
            raise DatasetError(f"{path}: chunks are missing or corrupt ({type(exc).__name__}: {exc}); {fix}") from exc
        for name, var in ds.data_vars.items():
            if var.dtype.kind == "f" and not np.isfinite(var.values).all():
                raise DatasetError(f"{path}: variable {name!r} contains NaN or inf; {fix}")
    return ds


def attr_json(ds: xr.Dataset, key: str) -> Any:
    """Read an attribute stored as a JSON string (returns the raw value if it is not JSON)."""
    value = ds.attrs[key]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
