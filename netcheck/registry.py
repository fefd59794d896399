"""The check registry: built-in checks and third-party ones through one loader.

A check is declared with :func:`check` on an ``async def run(ctx) -> Result``. The first
line of its docstring is the title ``netcheck checks`` prints. Built-in modules and the
entry-point group ``netcheck.checks`` go through the same path (as pytest's built-in
plugins do); a third-party module that fails to load gives a warning, never a crash, and
``NETCHECK_NO_PLUGINS=1`` turns third-party loading off.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Optional

from netcheck.model import Layer, Result

if TYPE_CHECKING:
    from netcheck.runner import Context

ENTRY_POINT_GROUP = "netcheck.checks"
BUILTIN_MODULES = (
    "netcheck.checks.physical",
    "netcheck.checks.link",
    "netcheck.checks.network",
    "netcheck.checks.transport",
    "netcheck.checks.presentation",
    "netcheck.checks.middlebox",  # proxies and portals: before the application they carry
    "netcheck.checks.application",
    "netcheck.checks.server",
)

RunFn = Callable[["Context"], Awaitable[Result]]
# What a check's finding can be about (Check.scope).
SCOPES = ("path", "host")
# The parts of the path a rung can judge (Check.path_part).
PATH_PARTS = ("", "interface", "address", "route", "gateway")
# Check.modes of this host's own lower layers that also run in server mode, judged there
# towards the client (``netcheck server --client``) or the default route: the "reciprocal
# lower layers". Not dns.* (no name to resolve), nor the rungs that probe the target.
RECIPROCAL = ("diagnose", "server")
AppliesFn = Callable[["Context"], Optional[str]]
StartFn = Callable[["Context"], None]


@dataclass(frozen=True)
class Check:
    """A check's declaration: what it is, what it needs, and the function that runs it."""

    id: str
    layer: Layer
    run: RunFn
    requires: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    modes: tuple[str, ...] = ("diagnose",)
    applies: Optional[AppliesFn] = None  # returns why it does not apply, or None
    needs_root: bool = False
    runs_last: bool = False  # waits for every other check (e.g. counters read at the end)
    # Passing (or warning), it proves the exchange at its layer went to the target and came
    # back: nothing below it can be why the target is unreachable (runner.top_down).
    proves_flow: bool = False
    # What a finding is about: "path", the way this flow's packets take (its interface,
    # address, route, gateway, target), or "host", the host as a whole (its devices, the
    # network manager, the loopback, other interfaces): off the path of a flow that works.
    scope: str = "path"
    # The part of the path a path-scope rung judges: "interface" (exists, up, carrier),
    # "address", "route" or "gateway"; "" for none. When it fails, what other checks sent
    # that way and got nothing back follows from it (runner.follow_ons).
    path_part: str = ""
    # Starts the check's probes (memoized tasks its run() picks up) when the run begins,
    # before its requirements are settled: a wait that only a timeout ends (nobody
    # answering) overlaps the rungs below instead of following them. What it sends is what
    # run() would send (even when a requirement then fails: run() is still blocked by it).
    starts: Optional[StartFn] = None
    module: str = ""
    order: int = 0

    @property
    def title(self) -> str:
        doc = (self.run.__doc__ or "").strip()
        return doc.splitlines()[0].rstrip(".") if doc else self.id

    @property
    def description(self) -> str:
        doc = (self.run.__doc__ or "").strip()
        return "\n".join(doc.splitlines()[1:]).strip()


_declared: list[Check] = []


def check(
    id: str,
    layer: Layer,
    *,
    requires: Iterable[str] = (),
    codes: Iterable[str] = (),
    modes: Iterable[str] = ("diagnose",),
    applies: Optional[AppliesFn] = None,
    needs_root: bool = False,
    runs_last: bool = False,
    proves_flow: bool = False,
    scope: str = "path",
    path_part: str = "",
    starts: Optional[StartFn] = None,
) -> Callable[[RunFn], RunFn]:
    """Declare a check. Use as a decorator on ``async def run(ctx) -> Result``."""
    if scope not in SCOPES:
        raise ValueError(f"check {id!r}: scope must be one of {', '.join(SCOPES)}")
    if path_part not in PATH_PARTS:
        raise ValueError(f"check {id!r}: path_part must be one of {PATH_PARTS}")

    def register(fn: RunFn) -> RunFn:
        _declared.append(Check(
            id=id, layer=layer, run=fn, requires=tuple(requires), codes=tuple(codes),
            modes=tuple(modes), applies=applies, needs_root=needs_root, runs_last=runs_last,
            proves_flow=proves_flow, scope=scope, path_part=path_part, starts=starts,
            module=fn.__module__,
            order=len(_declared),
        ))
        return fn

    return register


@dataclass
class Registry:
    """The checks loaded for a run, plus the warnings of plugins that failed to load."""

    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, Check]:
        return {c.id: c for c in self.checks}

    def for_mode(self, mode: str) -> list[Check]:
        return [c for c in self.checks if mode in c.modes]


def _import_module(name: str) -> list[Check]:
    before = len(_declared)
    module = importlib.import_module(name)
    # A package's checks may be declared in its submodules (netcheck.checks.network.*).
    found = [c for c in _declared
             if c.module == module.__name__ or c.module.startswith(module.__name__ + ".")]
    return found if len(_declared) > before or found else []


def _third_party_modules() -> list[tuple[str, str]]:
    """(name, "module[:attr]") of every ``netcheck.checks`` entry point installed.

    Read straight from the ``entry_points.txt`` of each distribution on ``sys.path``: the
    same files importlib.metadata reads, with its rules (the first distribution of a name
    on the path wins, names compared as PEP 503 normalises them). Not importlib.metadata
    itself: importing it costs 30-60 ms on this project's machines (email, zipfile, csv),
    its ``entry_points()`` 2-10 ms more, where this reader takes about 1 ms
    (tests/unit/test_entry_point_reader.py holds both to the same answer and keeps
    importlib.metadata out of the start-up).
    """
    if os.environ.get("NETCHECK_NO_PLUGINS"):
        return []
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in sorted(entries):
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            dist = re.sub(r"[-_.]+", "_", entry.split("-")[0]).lower()
            if dist in seen:  # the first on sys.path wins, as importlib.metadata does
                continue
            seen.add(dist)
            try:
                with open(os.path.join(folder, entry, "entry_points.txt"), encoding="utf-8") as fh:
                    found += _entry_points_in(fh.read())
            except OSError:
                continue
    return found


def _entry_points_in(text: str) -> list[tuple[str, str]]:
    """The ``netcheck.checks`` section of an entry_points.txt (an INI file)."""
    found, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{ENTRY_POINT_GROUP}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip().split()[0] if value.strip() else ""))
    return found


def load(builtin: Iterable[str] = BUILTIN_MODULES, third_party: bool = True) -> Registry:
    """Import the check modules and return what they declared.

    A third-party module that raises on import is reported in ``warnings``.
    """
    reg = Registry()
    seen: set[str] = set()
    rank: dict[str, int] = {}
    names = [(n, n) for n in builtin]
    if third_party:
        names += _third_party_modules()
    for label, module in names:
        module = module.split(":")[0]
        try:
            found = _import_module(module)
        except Exception as exc:
            if module in builtin:
                raise
            reg.warnings.append(f"plugin {label!r} ({module}) failed to load: {exc}")
            continue
        rank.setdefault(module, len(rank))
        for c in found:
            if c.id in seen:
                reg.warnings.append(f"check id {c.id!r} from {module} is declared twice; ignored")
                continue
            seen.add(c.id)
            # Within a layer: the modules' order in the list, then declaration order inside
            # each (the ladder's order and the root-cause tie-break), whatever was imported
            # first.
            reg.checks.append(replace(c, order=rank[module] * 100_000 + c.order))
    reg.checks.sort(key=lambda c: (int(c.layer), c.order))
    return reg


def warn(message: str) -> None:
    """Print a warning line on stderr (stdout may hold a JSON document)."""
    print(f"netcheck: warning: {message}", file=sys.stderr)
