"""Forward-crawling (FCM) scenario: stimulus design, split selection and the high-fidelity dataset.

Inputs PLML, PLMR (posterior touch) and AVBL, AVBR (forward command interneurons) receive currents; outputs
DB1, LUAL, PVR, VB1 are recorded (the paper's FCM protocol). Currents are in **nA** (NEURON ``IClamp``), not
the uA/cm2 of :mod:`neurosurrogate.stimuli` whose waveform classes are reused here.

Stimulus design (:func:`design_stimuli`): ``n`` stimuli cycle through six families -- step, pulses, ramp,
sine, smoothed noise and combinations (sum of two families) -- and every input neuron gets its own randomly
drawn waveform of the family (independent timing, so the four inputs are not collinear), peak-scaled to the
input's amplitude (``amplitudes``). In half of the stimuli one randomly chosen input is silent. Currents are
rectified at 0 (negative currents destabilise c302 cells: -20 pA drives PLM to -390 mV) and clipped at the
peak amplitude (smoothed noise would otherwise overshoot it). Everything follows from ``seed``.

Split selection (:func:`choose_split`): each sample gets a *difficulty* score from its simulated response --
the sum over output channels of the stimulus-driven standard deviation (output minus the zero-input run) plus
the standard deviation of its time derivative, each normalised by the median over samples. Within each family,
samples are ordered by difficulty (hardest first) and dealt round-robin ``test, validation, train, train``;
counts are then balanced to exactly 25 / 25 / 50 % by moving the least difficult surplus samples (never the
last of its family in a held-out split when avoidable). So validation and test each contain every waveform
family (diverse) and the hardest sample of each family (demanding), while training keeps examples of every
family and difficulty level.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..stimuli import Pulses, Ramp, Sine, SmoothedNoise, Step, Sum, Waveform, waveform_from_dict

FCM_INPUTS = ("PLML", "PLMR", "AVBL", "AVBR")
FCM_OUTPUTS = ("DB1", "LUAL", "PVR", "VB1")
FAMILIES = ("step", "pulses", "ramp", "sine", "noise", "combination")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Stimulus:
    """One FCM stimulus: a waveform (nA, time in ms from the start of the window) per input neuron.

    Attributes:
        family: the design family (one of ``FAMILIES``).
        waveforms: input neuron -> waveform (nA); absent inputs get zero current.
    """

    family: str
    waveforms: Mapping[str, Waveform]
    peaks: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def render(self, inputs: Sequence[str], duration: float, dt: float) -> np.ndarray:
        """Currents on ``t = 0, dt, ..., duration``: shape (duration / dt + 1, len(inputs)), nA, clipped to
        [0, peak] per input (rectified at 0; ``peaks`` default: no upper clip)."""
        n = round(duration / dt) + 1
        out = np.zeros((n, len(inputs)))
        t = np.arange(n) * dt
        for j, name in enumerate(inputs):
            if name in self.waveforms:
                out[:, j] = np.asarray(self.waveforms[name](t, dt), dtype=float)
                out[:, j] = np.clip(out[:, j], 0.0, self.peaks.get(name, np.inf))
        return out

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "waveforms": {k: w.to_dict() for k, w in self.waveforms.items()},
            "peaks": dict(self.peaks),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Stimulus:
        return cls(
            d["family"],
            {k: waveform_from_dict(w) for k, w in d["waveforms"].items()},
            dict(d.get("peaks", {})),
        )


def _one(rng: np.random.Generator, family: str, amp: float, duration: float) -> Waveform:
    """A waveform of ``family`` peaking near ``amp`` (nA) inside [0, duration] ms."""
    u = rng.uniform
    if family == "step":
        start = u(0.05, 0.5) * duration
        stop = u(start + 0.15 * duration, duration * 1.05)
        return Step(amplitude=amp * u(0.5, 1.0), start=round(start, 1), stop=round(min(stop, duration), 1))
    if family == "pulses":
        period = u(0.08, 0.25) * duration
        width = period * u(0.2, 0.6)
        return Pulses(
            amplitude=amp * u(0.6, 1.0),
            start=round(u(0.02, 0.3) * duration, 1),
            width=round(width, 1),
            period=round(period, 1),
            count=int(rng.integers(2, 7)),
        )
    if family == "ramp":
        start, stop = sorted(u(0.0, 1.0, size=2) * duration)
        stop = max(stop, start + 0.2 * duration)
        up = rng.random() < 0.6
        hi = amp * u(0.6, 1.0)
        return Ramp(
            begin=0.0 if up else hi,
            end=hi if up else 0.0,
            start=round(start, 1),
            stop=round(min(stop, duration), 1),
        )
    if family == "sine":
        a = amp * u(0.3, 0.5)
        return Sine(
            amplitude=a,
            offset=a,
            frequency=round(u(2.0, 25.0), 2),
            phase=round(u(0, 2 * math.pi), 3),
            start=round(u(0.0, 0.3) * duration, 1),
            stop=None,
        )
    if family == "noise":
        return SmoothedNoise(
            std=amp * u(0.2, 0.35),
            mean=amp * u(0.3, 0.5),
            tau=round(u(5.0, 40.0), 1),
            seed=int(rng.integers(0, 2**31 - 1)),
            start=round(u(0.0, 0.3) * duration, 1),
            stop=None,
        )
    raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")


def design_stimuli(
    n: int = 40,
    *,
    seed: int = 0,
    duration: float = 500.0,
    amplitudes: Mapping[str, float],
    inputs: Sequence[str] = FCM_INPUTS,
) -> list[Stimulus]:
    """``n`` diverse stimuli (see the module docstring), reproducible from ``seed``.

    Args:
        n: number of stimuli (>= 1).
        seed: random seed.
        duration: stimulus window, ms.
        amplitudes: peak current per input neuron, nA (> 0).
        inputs: input neurons.

    Returns:
        ``n`` :class:`Stimulus` objects; ``stimuli[i].family == FAMILIES[i % 6]``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"invalid samples: got {n!r}; pass a positive integer (e.g. --samples 40)")
    missing = [k for k in inputs if k not in amplitudes]
    bad = {
        k: v
        for k, v in amplitudes.items()
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
    }
    if missing or bad:
        raise ValueError(
            f"invalid amplitudes: missing {missing}, not positive finite {bad}; give a peak nA per input"
        )
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        silent = set()
        if rng.random() < 0.5:
            silent = {inputs[int(rng.integers(len(inputs)))]}
        waves: dict[str, Waveform] = {}
        for name in inputs:
            if name in silent:
                continue
            amp = float(amplitudes[name])
            if family == "combination":
                a, b = rng.choice(FAMILIES[:-1], size=2, replace=False)
                waves[name] = Sum(
                    (_one(rng, str(a), 0.6 * amp, duration), _one(rng, str(b), 0.4 * amp, duration))
                )
            else:
                waves[name] = _one(rng, family, amp, duration)
        out.append(Stimulus(family, waves, {k: float(amplitudes[k]) for k in inputs}))
    return out


def difficulty(driven: np.ndarray, dt: float) -> np.ndarray:
    """Per-sample difficulty of stimulus-driven outputs (sample, time, channel), mV (see module docstring)."""
    sd = driven.std(axis=1)  # (sample, channel)
    dsd = np.diff(driven, axis=1).std(axis=1) / dt
    norm = lambda x: x / np.maximum(np.median(x, axis=0, keepdims=True), 1e-12)
    return (norm(sd) + norm(dsd)).sum(axis=1)


def choose_split(families: Sequence[str], score: np.ndarray, fractions=(0.5, 0.25, 0.25)) -> list[str]:
    """Assign ``train``/``validation``/``test`` per sample (see the module docstring).

    Args:
        families: family per sample.
        score: difficulty per sample (higher = harder).
        fractions: train, validation, test fractions.

    Returns:
        A label per sample.
    """
    n = len(families)
    if len(score) != n:
        raise ValueError(f"score has {len(score)} entries for {n} samples")
    target = {"validation": round(fractions[1] * n), "test": round(fractions[2] * n)}
    target["train"] = n - target["validation"] - target["test"]
    pattern = ("test", "validation", "train", "train")
    labels = [""] * n
    for fam in dict.fromkeys(families):
        members = sorted((i for i in range(n) if families[i] == fam), key=lambda i: -score[i])
        for k, i in enumerate(members):
            labels[i] = pattern[k % len(pattern)]
    # balance to the exact counts: move the least difficult samples of over-full splits to under-full ones
    for _ in range(n):
        counts = {s: labels.count(s) for s in SPLITS}
        over = [s for s in SPLITS if counts[s] > target[s]]
        under = [s for s in SPLITS if counts[s] < target[s]]
        if not over:
            break
        src, dst = over[0], under[0]
        cand = [i for i in range(n) if labels[i] == src]
        fam_in = lambda split: [families[i] for i in range(n) if labels[i] == split]
        if src == "train":  # move the hardest, preferring a family the destination lacks
            missing = [i for i in cand if families[i] not in fam_in(dst)]
            pick = max(missing or cand, key=lambda i: score[i])
        else:  # move the easiest, never the last member of its family in this split if avoidable
            spare = [i for i in cand if fam_in(src).count(families[i]) > 1]
            pick = min(spare or cand, key=lambda i: score[i])
        labels[pick] = dst
    return labels
