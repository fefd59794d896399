"""``python -m netcheck.lab ...``: the same as ``netcheck lab ...``."""

import sys

from netcheck.cli import run

sys.exit(run(["lab", *sys.argv[1:]]))
