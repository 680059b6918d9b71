#!/usr/bin/env bash
# Install the test extras and run the test suite. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python -m pip install -q -e ".[dev,celegans,distributed]"
export MPLBACKEND=Agg
python -m pytest "$@"
