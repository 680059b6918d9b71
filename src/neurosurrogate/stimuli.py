"""Input-current waveforms (uA/cm2, time in ms): steps, pulse trains, ramps, sines, smoothed noise and their sums.

Waveforms are small frozen objects; ``render(duration, dt)`` samples them on the simulation grid. Every waveform
round-trips through a plain dict (``to_dict`` / ``waveform_from_dict``) so configs and dataset attributes can store
them, and parses from a compact text form used on the command line::

    step(amplitude=10, start=100, stop=500) + sine(amplitude=3, frequency=5)

Noise is reproducible from its ``seed`` for a given grid.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Waveform(abc.ABC):
    """A deterministic function of time (ms) returning a current (uA/cm2)."""

    @abc.abstractmethod
    def __call__(self, t: np.ndarray, dt: float) -> np.ndarray:
        """Sample at times ``t`` (ms) on a grid of step ``dt``."""

    def render(self, duration: float, dt: float) -> np.ndarray:
        """Samples on ``t = 0, dt, ..., duration - dt``: shape (round(duration / dt),)."""
        steps = n_steps(duration, dt)
        return np.asarray(self(np.arange(steps) * dt, dt), dtype=float)

    def __add__(self, other: Waveform) -> Waveform:
        return Sum(tuple(_terms(self)) + tuple(_terms(other)))

    def to_dict(self) -> dict:
        """Plain-dict form (with the waveform's ``kind``)."""
        if isinstance(self, Sum):
            return {"kind": "sum", "terms": [t.to_dict() for t in self.terms]}
        return {"kind": _KIND_OF[type(self)], **dataclasses.asdict(self)}


def _terms(w: Waveform):
    return w.terms if isinstance(w, Sum) else (w,)


def n_steps(duration: float, dt: float) -> int:
    """Number of steps of length dt in duration (both ms), refusing non-positive or inconsistent values."""
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"invalid dt: got {dt!r}. The time step must be a positive number of ms")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"invalid duration: got {duration!r}. The duration must be a positive number of ms")
    steps = round(duration / dt)
    if steps < 1 or abs(steps * dt - duration) > 1e-6 * max(duration, 1.0):
        raise ValueError(f"duration {duration} ms is not a whole number of steps of dt {dt} ms; adjust one of them")
    return steps


def _window(t, start, stop):
    stop = math.inf if stop is None else stop
    return ((t >= start) & (t < stop)).astype(float)


@dataclasses.dataclass(frozen=True)
class Constant(Waveform):
    """A constant current ``value`` (uA/cm2)."""

    value: float = 0.0

    def __call__(self, t, dt):
        return np.full(np.shape(t), float(self.value))


@dataclasses.dataclass(frozen=True)
class Step(Waveform):
    """``amplitude`` (uA/cm2) between ``start`` and ``stop`` (ms; None = until the end)."""

    amplitude: float = 10.0
    start: float = 0.0
    stop: float | None = None

    def __call__(self, t, dt):
        return self.amplitude * _window(t, self.start, self.stop)


@dataclasses.dataclass(frozen=True)
class Pulses(Waveform):
    """``count`` pulses of ``amplitude`` and ``width`` (ms), one every ``period`` ms from ``start``."""

    amplitude: float = 10.0
    start: float = 0.0
    width: float = 10.0
    period: float = 50.0
    count: int = 1

    def __call__(self, t, dt):
        rel = t - self.start
        k = np.floor(rel / self.period)
        on = (rel >= 0) & (k < self.count) & ((rel - k * self.period) < self.width)
        return self.amplitude * on.astype(float)


@dataclasses.dataclass(frozen=True)
class Ramp(Waveform):
    """Linear from ``begin`` at ``start`` to ``end`` at ``stop`` (uA/cm2, ms); zero outside."""

    begin: float = 0.0
    end: float = 10.0
    start: float = 0.0
    stop: float = 100.0

    def __call__(self, t, dt):
        frac = np.clip((t - self.start) / max(self.stop - self.start, 1e-12), 0.0, 1.0)
        return (self.begin + (self.end - self.begin) * frac) * _window(t, self.start, self.stop)


@dataclasses.dataclass(frozen=True)
class Sine(Waveform):
    """``offset + amplitude sin(2 pi frequency t / 1000 + phase)`` between ``start`` and ``stop`` (frequency Hz)."""

    amplitude: float = 5.0
    frequency: float = 5.0
    phase: float = 0.0
    offset: float = 0.0
    start: float = 0.0
    stop: float | None = None

    def __call__(self, t, dt):
        wave = self.offset + self.amplitude * np.sin(2 * np.pi * self.frequency * t / 1000.0 + self.phase)
        return wave * _window(t, self.start, self.stop)


@dataclasses.dataclass(frozen=True)
class SmoothedNoise(Waveform):
    """Gaussian white noise smoothed by a Gaussian kernel of width ``tau`` (ms), scaled to ``std``, plus ``mean``.

    The sample path is fixed by ``seed`` and the grid step.
    """

    std: float = 5.0
    tau: float = 20.0
    mean: float = 0.0
    seed: int = 0
    start: float = 0.0
    stop: float | None = None

    def __call__(self, t, dt):
        rng = np.random.default_rng(int(self.seed))
        half = int(math.ceil(3 * self.tau / dt))
        white = rng.standard_normal(len(t) + 2 * half)
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * dt / max(self.tau, 1e-12)) ** 2)
        smooth = np.convolve(white, kernel, mode="valid")[: len(t)]
        sd = smooth.std()
        smooth = smooth / sd if sd > 0 else smooth
        return (self.mean + self.std * smooth) * _window(t, self.start, self.stop)


@dataclasses.dataclass(frozen=True)
class Sum(Waveform):
    """The sum of several waveforms."""

    terms: tuple[Waveform, ...] = ()

    def __call__(self, t, dt):
        out = np.zeros(np.shape(t))
        for term in self.terms:
            out = out + term(t, dt)
        return out


_KINDS: dict[str, type[Waveform]] = {
    "constant": Constant, "step": Step, "pulses": Pulses, "ramp": Ramp, "sine": Sine, "noise": SmoothedNoise,
}
_KIND_OF = {v: k for k, v in _KINDS.items()}


def waveform_from_dict(d: Mapping) -> Waveform:
    """Inverse of :meth:`Waveform.to_dict` (clear errors for unknown kinds or fields)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "sum":
        return Sum(tuple(waveform_from_dict(x) for x in d.get("terms", [])))
    if kind not in _KINDS:
        raise ValueError(f"unknown waveform kind {kind!r}; choose one of {sorted(_KINDS) + ['sum']}")
    cls = _KINDS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields
    if unknown:
        raise ValueError(f"waveform {kind!r} has no field(s) {sorted(unknown)}; fields are {sorted(fields)}")
    return cls(**d)


_TERM = re.compile(r"^\s*([a-z]+)\s*(?:\((.*)\))?\s*$")


def parse_waveform(text: str) -> Waveform:
    """Parse ``kind(key=value, ...) + kind(...)``, e.g. ``step(amplitude=10, start=100, stop=500)``."""
    terms = []
    for part in _split_plus(text):
        m = _TERM.match(part)
        if not m:
            raise ValueError(f"cannot parse waveform {part!r}; expected kind(key=value, ...), e.g. step(amplitude=10)")
        kind, args = m.group(1), m.group(2) or ""
        fields: dict[str, object] = {"kind": kind}
        for item in filter(None, (a.strip() for a in args.split(","))):
            if "=" not in item:
                raise ValueError(f"waveform argument {item!r} in {part!r} must be key=value")
            key, value = (s.strip() for s in item.split("=", 1))
            if value.lower() == "none":
                fields[key] = None
            else:
                fields[key] = int(value) if key in ("seed", "count") else float(value)
        terms.append(waveform_from_dict(fields))
    if not terms:
        raise ValueError("empty waveform specification")
    return terms[0] if len(terms) == 1 else Sum(tuple(terms))


def _split_plus(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "+" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


@dataclasses.dataclass(frozen=True)
class Drive:
    """Waveforms applied to named neurons: ``Drive({"PLM": Step(20, 100, 600)})``."""

    waveforms: Mapping[str, Waveform]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.waveforms)

    def render(self, duration: float, dt: float) -> np.ndarray:
        """Shape (steps, len(targets)), uA/cm2."""
        return np.stack([w.render(duration, dt) for w in self.waveforms.values()], axis=1)

    def to_dict(self) -> dict:
        return {name: w.to_dict() for name, w in self.waveforms.items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Drive:
        return cls({name: waveform_from_dict(w) for name, w in d.items()})

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Drive:
        """From command-line items ``NEURON=waveform`` (e.g. ``PLM=step(amplitude=20,start=100,stop=600)``)."""
        out: dict[str, Waveform] = {}
        for s in specs:
            if "=" not in s.split("(")[0]:
                raise ValueError(f"stimulus {s!r} must look like NEURON=kind(...), e.g. PLM=step(amplitude=20)")
            name, wave = s.split("=", 1)
            name = name.strip()
            out[name] = out[name] + parse_waveform(wave) if name in out else parse_waveform(wave)
        return cls(out)
