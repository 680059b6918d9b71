"""Zarr stores: round trip, and refusal of missing, partial, corrupt or mis-structured stores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from neurosurrogate import load_circuit
from neurosurrogate.data import DatasetError, load_dataset, save_dataset
from neurosurrogate.experiments.simulation import default_drives, simulate_drives


@pytest.fixture(scope="module")
def ds():
    circuit = load_circuit("tap_withdrawal")
    return simulate_drives(circuit, default_drives(circuit), duration=60.0, dt=0.5, stride=2,
                           model_config={"model": "tap_withdrawal"})


def test_dataset_structure(ds):
    assert dict(ds.sizes) == {"sample": 3, "time": 60, "channel": 9, "input": 4}
    assert ds.attrs["dt"] == 0.5 and ds.attrs["sample_dt"] == 1.0
    assert ds["V"].attrs["units"] == "mV" and ds.time.attrs["units"] == "ms"
    assert list(ds["label"].values)[0].startswith("tail touch")


def test_round_trip(tmp_path, ds):
    path = save_dataset(ds, tmp_path / "t.zarr", kind="trajectories")
    back = load_dataset(path, kind="trajectories", variables=["V", "Ca", "current"], dims=["sample", "time"])
    np.testing.assert_allclose(back["V"].values, ds["V"].values)
    assert back.attrs["kind"] == "trajectories"
    assert isinstance(back.attrs["stimuli"], str)  # nested attrs are stored as JSON
    with pytest.raises(FileExistsError, match="overwrite"):
        save_dataset(ds, path, kind="trajectories")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_refuses_bad_stores(tmp_path, ds):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.zarr")
    path = save_dataset(ds, tmp_path / "t.zarr", kind="trajectories")
    with pytest.raises(DatasetError, match="expected 'betacell'"):
        load_dataset(path, kind="betacell")
    with pytest.raises(DatasetError, match="lacks variables"):
        load_dataset(path, variables=["X"])
    # corrupt: remove a chunk of V
    broken = tmp_path / "broken.zarr"
    shutil.copytree(path, broken)
    for chunk in (broken / "V").iterdir():
        if chunk.name[0].isdigit():
            chunk.unlink()
    with pytest.raises(DatasetError):
        load_dataset(broken)
    # partial: a folder that is not a store
    (tmp_path / "partial.zarr").mkdir()
    (tmp_path / "partial.zarr" / "junk").write_text("x")
    with pytest.raises(DatasetError, match="not a readable Zarr store|not written by neurosurrogate"):
        load_dataset(tmp_path / "partial.zarr")
    # NaN values are refused
    nan = ds.copy(deep=True)
    nan["V"][0, 3, 0] = np.nan
    path = save_dataset(nan, tmp_path / "nan.zarr", kind="trajectories")
    with pytest.raises(DatasetError, match="NaN"):
        load_dataset(path)
