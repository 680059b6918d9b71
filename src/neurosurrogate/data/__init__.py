"""Datasets on disk: xarray Datasets stored as Zarr, validated on load."""

from .store import DatasetError as DatasetError
from .store import load_dataset as load_dataset
from .store import save_dataset as save_dataset
from .trajectories import trajectory_to_dataset as trajectory_to_dataset

__all__ = ["DatasetError", "load_dataset", "save_dataset", "trajectory_to_dataset"]
