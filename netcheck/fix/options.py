"""The options of a repair, shared by ``netcheck fix`` and ``netcheck server --fix``.

Kept apart from :mod:`netcheck.fix.command` so that ``netcheck server --help`` does not
import the repair machinery.
"""

from __future__ import annotations

import argparse

CONFIRM_DEFAULT = 30.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of seconds") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} must be between 1 and 3600 seconds")
    return value


def add_repair_options(parser: argparse.ArgumentParser) -> None:
    """``--yes``, ``--confirm-timeout``, ``--plan``, ``--rollback``."""
    group = parser.add_argument_group("repair")
    group.add_argument("--yes", "-y", action="store_true",
                       help="apply without asking, and keep the change when the verdict "
                            "improved")
    group.add_argument("--confirm-timeout", type=_seconds, default=CONFIRM_DEFAULT,
                       metavar="S", help="seconds to confirm a change before it is rolled back "
                                         f"(default {CONFIRM_DEFAULT:g})")
    group.add_argument("--plan", action="store_true",
                       help="only show the plan; change nothing")
    group.add_argument("--rollback", action="store_true",
                       help="undo the repair a killed netcheck left behind (from its journal)")
