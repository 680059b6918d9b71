"""Stimulus waveforms: values, reproducibility, round trips and parsing."""

from __future__ import annotations

import numpy as np
import pytest

from neurosurrogate.stimuli import (
    Drive,
    Pulses,
    Ramp,
    Sine,
    SmoothedNoise,
    Step,
    n_steps,
    parse_waveform,
    waveform_from_dict,
)


def test_waveform_values():
    dt = 1.0
    t = np.arange(1200) * dt
    box = (Step(10.0, 200.0, 600.0) + Step(20.0, 800.0, 1000.0)).render(1200.0, dt)
    np.testing.assert_array_equal(box, 10.0 * ((t >= 200) & (t < 600)) + 20.0 * ((t >= 800) & (t < 1000)))
    ramp = Ramp(0.0, 10.0, 100.0, 200.0).render(1200.0, dt)
    assert ramp[150] == pytest.approx(5.0) and ramp[99] == 0.0 and ramp[250] == 0.0
    sine = Sine(2.0, 10.0).render(1200.0, dt)  # 10 Hz: period 100 ms
    assert sine[25] == pytest.approx(2.0) and sine[75] == pytest.approx(-2.0)
    pulses = Pulses(5.0, 100.0, 10.0, 50.0, 3).render(1200.0, dt)
    assert pulses.sum() == pytest.approx(5.0 * 10 * 3) and pulses[100] == 5.0 and pulses[160] == 0.0


def test_noise_is_reproducible_from_seed_and_has_requested_statistics():
    a = SmoothedNoise(std=4.0, tau=10.0, mean=2.0, seed=7).render(5000.0, 0.5)
    b = SmoothedNoise(std=4.0, tau=10.0, mean=2.0, seed=7).render(5000.0, 0.5)
    c = SmoothedNoise(std=4.0, tau=10.0, mean=2.0, seed=8).render(5000.0, 0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.mean() == pytest.approx(2.0, abs=1e-9) or abs(a.mean() - 2.0) < 1.0
    assert a.std() == pytest.approx(4.0, rel=0.05)
    # smoothed: neighbouring samples are strongly correlated
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.95


def test_round_trip_and_parse():
    w = Step(10.0, 100.0, 500.0) + Sine(3.0, 5.0) + SmoothedNoise(seed=3)
    assert waveform_from_dict(w.to_dict()) == w
    parsed = parse_waveform("step(amplitude=10, start=100, stop=500) + sine(amplitude=3, frequency=5) + noise(seed=3)")
    assert parsed == w
    drive = Drive.parse(["PLM=step(amplitude=20,start=200,stop=700)", "PVD=sine(amplitude=2)"])
    assert drive.targets == ("PLM", "PVD") and Drive.from_dict(drive.to_dict()) == drive
    assert drive.render(100.0, 0.5).shape == (200, 2)


@pytest.mark.parametrize(
    "text,match",
    [("wave(amplitude=1)", "unknown waveform kind"), ("step(amp=1)", "has no field"), ("step(10)", "key=value"),
     ("", "empty")],
)
def test_parse_errors_are_clear(text, match):
    with pytest.raises(ValueError, match=match):
        parse_waveform(text)


def test_bad_grid():
    with pytest.raises(ValueError, match="positive"):
        n_steps(100.0, -0.1)
    with pytest.raises(ValueError, match="whole number"):
        n_steps(100.0, 0.3)
    with pytest.raises(ValueError, match="NEURON=kind"):
        Drive.parse(["step(amplitude=1)"])
