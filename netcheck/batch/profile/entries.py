"""What a profile is: its entries (:class:`Entry`: a name, a group, a target or the problem
that kept it from being one), the :class:`Profile`, the :class:`ProfileError` that refuses a
whole file, and profile text as it may be shown (:func:`_show`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from netcheck.defaults import EXPECT
from netcheck.redact import shown
from netcheck.target import Target

MAX_SHOWN_TEXT = 120


class ProfileError(Exception):
    """The profile cannot be read at all (missing, unreadable, past a bound): one line."""


class Entry:
    """One line of the profile: a target to diagnose, or a problem to report as unknown.

    ``__slots__``: a profile may hold a hundred thousand of these.
    """

    __slots__ = ("name", "group", "line", "text", "target", "options", "expect", "problem")

    def __init__(self, name: str, group: str, line: int, text: str,
                 target: Optional[Target] = None, options: Optional[dict[str, Any]] = None,
                 expect: str = EXPECT, problem: Optional[str] = None) -> None:
        self.name = name  # "group/name", or the target text for a line of stdin
        self.group = group
        self.line = line
        self.text = text  # the target as written, its password masked
        self.target = target
        self.options = options if options is not None else {}
        self.expect = expect
        self.problem = problem  # why this line cannot run (then target is None)

    @property
    def runnable(self) -> bool:
        return self.problem is None and self.target is not None

    @property
    def short_name(self) -> str:
        """The name inside its group."""
        return self.name[len(self.group) + 1:] if self.group else self.name

    def __repr__(self) -> str:
        return f"<Entry {self.name!r} line {self.line} {self.problem or self.text!r}>"


@dataclass
class Profile:
    """Everything read from one profile, in file order."""

    source: str  # the file name as given, or "<stdin>"
    entries: list[Entry] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # "LINE: text" worth saying, not results

    @property
    def problems(self) -> list[Entry]:
        return [e for e in self.entries if e.problem is not None]

    @property
    def runnable(self) -> int:
        return sum(1 for e in self.entries if e.runnable)

    def problem_lines(self) -> Iterator[str]:
        """``FILE:LINE: message`` for every problem, as compilers print them."""
        for e in self.entries:
            if e.problem is not None:
                yield f"{self.source}:{e.line}: {e.problem}"
        for note in self.notes:
            yield f"{self.source}:{note}"


def _show(text: str) -> str:
    """Profile text as it may be shown: on one line, secrets masked, controls escaped, cut."""
    return shown(" ".join(text.split()), MAX_SHOWN_TEXT)
