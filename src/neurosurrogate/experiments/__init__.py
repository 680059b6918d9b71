"""Reproduced paper experiments; each writes a run folder (see `RunFolder`)."""

from ._run import RunFolder as RunFolder
