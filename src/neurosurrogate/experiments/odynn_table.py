"""The ODYNN thesis' experiments table (chapter 4, appendix A) as data: cheap to import (the CLI lists it)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class OdynnExperiment:
    """One row of the thesis' experiments table.

    Attributes:
        name: experiment name (``li``, ``shh``, ``chh``, ``tap-withdrawal``, ...).
        model: neuron model short name.
        circuit: packaged circuit name or None for a single neuron.
        grouped: share one neuron parameter set across the circuit.
        population, iterations, lr, decay: optimiser settings (thesis table).
        dt: time step, ms.
        duration: stimulus length, ms.
        n_train, n_test: number of train and test stimuli.
        amplitude: largest input-current amplitude, uA/cm2.
        noise: std of the Gaussian noise added to target records (mV, and Ca units) and to the currents the fit sees.
        w_ca: weight of the calcium term (thesis eq. 3.20).
        g_max: upper bound of synaptic conductances (circuits).
        threshold: loss threshold counted in the metrics (e.g. 0.5 mV^2 for tap withdrawal).
        relative_steps: Adam steps in units of each parameter's initialisation range (``FitSettings``).
        screen: random-search candidates the population is picked from (``FitSettings``; 0: none).
        restart_above, restart_window: re-draw members that stall above this train loss, judged over this many
            iterations (``FitSettings``; None: never).
        shard: split the population over the CPU cores (``FitSettings``; pays off for small populations of big
            circuits).
        target: "simulated" (the default model's response to box currents) or "wave" (the thesis' redefined
            forward-locomotion target: one waveform shifted by 64 ms from neuron to neuron, every neuron fitted).
        tap_groups: circuits only: sensor groups receiving mechanical taps (see ``tap_currents``); empty: independent
            random box pulses on every sensor.
        thesis: the thesis' published result for the README table.
    """

    name: str
    model: str = "LI"
    circuit: str | None = None
    grouped: bool = False
    population: int = 100
    iterations: int = 400
    lr: float = 1.0
    decay: float = 0.92
    dt: float = 1.0
    duration: float = 1200.0
    n_train: int = 5
    n_test: int = 5
    amplitude: float = 20.0
    noise: float = 1.5
    w_ca: float = 0.0
    g_max: float | None = None
    threshold: float | None = None
    checkpoint_every: int = 50
    relative_steps: bool = False
    screen: int = 0
    restart_above: float | None = None
    restart_window: int = 100
    shard: bool = False
    target: str = "simulated"
    tap_groups: tuple[tuple[str, ...], ...] = ()
    thesis: str = ""

    def settings(self, seed: int = 0):
        """The optimiser settings (:class:`~neurosurrogate.fit.population.FitSettings`) of this experiment."""
        from ..fit.population import FitSettings

        return FitSettings(
            population=self.population,
            iterations=self.iterations,
            lr=self.lr,
            decay=self.decay,
            seed=seed,
            checkpoint_every=self.checkpoint_every,
            relative_steps=self.relative_steps,
            screen=self.screen,
            restart_above=self.restart_above,
            restart_window=self.restart_window,
            shard=self.shard,
        )


_FORWARD_LOCOMOTION = OdynnExperiment(
    "forward-locomotion",
    "CHH",
    circuit="forward_locomotion",
    population=10,
    iterations=1400,
    lr=0.4,
    decay=0.95,
    dt=0.2,
    duration=5000.0,
    n_train=1,
    n_test=0,
    amplitude=5.0,
    noise=1.0,
    target="wave",
    checkpoint_every=20,
    shard=True,
    thesis="losses 79-124 (CHH full: 117 on Lung's target, 90.4 redefined); 29 h",
)

EXPERIMENTS: dict[str, OdynnExperiment] = {
    e.name: e
    for e in (
        OdynnExperiment(
            "li",
            "LI",
            iterations=300,
            amplitude=40.0,
            thesis="best 12.46 mV^2; C_m 1.020, g_L 0.0998, E_L -59.40 (target 1, 0.1, -60)",
        ),
        OdynnExperiment(
            "shh", "SHH", iterations=400, amplitude=5.0, thesis="best 104 mV^2; not identifiable"
        ),
        OdynnExperiment(
            "chh", "CHH", iterations=500, amplitude=20.0, w_ca=1.0, thesis="best 5.17 (V and Ca)"
        ),
        OdynnExperiment(
            "tap-withdrawal",
            "CHH",
            circuit="tap_withdrawal",
            population=50,
            iterations=700,
            lr=0.03,
            decay=0.98,
            relative_steps=True,
            restart_above=0.5,
            restart_window=40,
            dt=0.5,
            n_train=3,
            n_test=3,
            amplitude=20.0,
            noise=0.0,
            g_max=2.0,
            threshold=0.5,
            tap_groups=(("AVM", "ALM"), ("PVD", "PLM")),  # = circuit_tap_groups("tap_withdrawal") (tested)
            thesis="38 of 50 below 0.5 mV^2 in 2.5 h",
        ),
        _FORWARD_LOCOMOTION,
        dataclasses.replace(
            _FORWARD_LOCOMOTION,
            name="forward-locomotion-grouped",
            grouped=True,
            thesis="CHH grouped: 79.4 on Lung's target, 99.2 redefined; 29 h",
        ),
    )
}

#: sizes of the quick versions used by the test suite
QUICK = {
    "population": 6,
    "iterations": 12,
    "duration": 300.0,
    "n_train": 2,
    "n_test": 2,
    "checkpoint_every": 5,
}


def experiment(name: str, *, quick: bool = False, **overrides) -> OdynnExperiment:
    """The experiment definition by name (``odynn-`` prefix optional), quick-sized if asked, with overrides."""
    key = name.lower().removeprefix("odynn-")
    if key not in EXPERIMENTS:
        raise ValueError(f"invalid experiment: got {name!r}. Choose one of {sorted(EXPERIMENTS)}")
    exp = EXPERIMENTS[key]
    if quick:
        exp = dataclasses.replace(exp, **QUICK)
        if exp.target == "wave":
            exp = dataclasses.replace(exp, population=2, iterations=2, duration=30.0, n_train=1, n_test=0)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(exp, **overrides)
