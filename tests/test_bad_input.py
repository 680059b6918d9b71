"""Bad input gets a clear error naming the problem and the fix, and leaves no partial output."""

from __future__ import annotations

import numpy as np
import pytest

from neurosurrogate import CElegansHH, build_circuit, load_circuit, simulate


def test_unknown_circuit():
    with pytest.raises(ValueError, match=r"unknown circuit 'tap'.*forward_locomotion.*tap_withdrawal"):
        load_circuit("tap")


def test_stimulus_neuron_count_mismatch():
    with pytest.raises(ValueError, match=r"3 input column\(s\) but the model has 9 neurons or 4 \(sensors"):
        simulate(load_circuit("tap_withdrawal"), np.zeros((100, 3)), dt=0.5)
    with pytest.raises(ValueError, match="name one neuron per input column"):
        simulate(load_circuit("tap_withdrawal"), np.zeros((100, 3)), dt=0.5, inputs=["PLM"])
    with pytest.raises(ValueError, match="unknown neuron"):
        simulate(load_circuit("tap_withdrawal"), np.zeros((100, 1)), dt=0.5, inputs=["XYZ"])


def test_nan_in_stimulus():
    current = np.full(100, 5.0)
    current[42] = np.nan
    with pytest.raises(ValueError, match="NaN/inf at time step 42"):
        simulate(CElegansHH.default(), current, dt=0.5)


@pytest.mark.parametrize("dt", [-0.1, 0.0, float("nan")])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="invalid dt"):
        simulate(CElegansHH.default(), np.zeros(10), dt=dt)


def test_bad_shapes_and_connectivity():
    with pytest.raises(ValueError, match="stimulus shape"):
        simulate(CElegansHH.default(), np.zeros((2, 2, 2, 2)), dt=0.5)
    with pytest.raises(ValueError, match="unknown neuron 'Q'"):
        build_circuit(["A", "B"], [("A", "Q", "SYNAPSE")])
    with pytest.raises(ValueError, match="unknown synapse preset"):
        build_circuit(["A", "B"], [("A", "B", "SYNAPSE9")])
    with pytest.raises(ValueError, match="unique"):
        build_circuit(["A", "A"], [])
    with pytest.raises(ValueError, match="unknown parameter"):
        CElegansHH.default(1, g_Na=1.0)
