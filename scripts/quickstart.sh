#!/usr/bin/env bash
# Quick start: install neurosurrogate and run the main job end to end on small defaults.
# Usage: bash scripts/quickstart.sh [extra `neurosurrogate run` options]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python -m pip install -q -e .
neurosurrogate run --out runs/quickstart "$@"
