"""Shared jaxtyping aliases with shape names used across the package."""

from __future__ import annotations

from jaxtyping import Array, Float

#: one value per neuron, shape (n,)
PerNeuron = Float[Array, " n"]
#: one value per synapse, shape (s,)
PerSynapse = Float[Array, " s"]
#: an input current waveform, shape (time, inputs), uA/cm2
Current = Float[Array, "time inputs"]
#: a scalar
Scalar = Float[Array, ""]
