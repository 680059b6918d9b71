"""``python -m neurosurrogate ...``: the same command line as the ``neurosurrogate`` script."""

from .cli import main

main()
