"""Test configuration: float32 by default; the `x64` fixture switches JAX to float64 for one test."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats (models must be built inside the test)."""
    with jax.enable_x64(True):
        yield
