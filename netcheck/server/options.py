"""The settings of a ``netcheck server`` run, as the checks see them (``ctx.options``).

Imported when a run starts, not at start-up: it brings the runner (and asyncio) with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from netcheck.runner import Options
from netcheck.server.inputs import DEFAULT_SINCE

if TYPE_CHECKING:
    from netcheck.runner import Context


@dataclass
class ServerOptions(Options):
    """:class:`~netcheck.runner.Options` plus what the server checks need."""

    port: int = 0
    proto: str = "tcp"
    service: Optional[str] = None  # a valid unit name (normalise_unit), given
    process: Optional[str] = None
    log: Optional[str] = None  # a file, or "journal"
    client: Optional[str] = None  # the client's address, normalised
    search_id: Optional[str] = None  # the request id to find (what diagnose printed)
    since_s: float = 3600.0
    since_text: str = DEFAULT_SINCE
    procfs: str = "/proc"


def server_options(ctx: Context) -> ServerOptions:
    """The run's server settings (server-mode checks run only with them)."""
    opts = ctx.options
    if not isinstance(opts, ServerOptions):
        raise TypeError("a server-mode check ran without ServerOptions")
    return opts
