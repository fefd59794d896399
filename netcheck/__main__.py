"""``python -m netcheck``: the same as the ``netcheck`` command."""

from netcheck.cli import main

main()
