"""The event loop every probe runs on (:class:`ProbeLoop`, a daemon thread of its own), and how
many exchanges may run on it at once (:func:`exchange_limit`, from the descriptor limit).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Coroutine, TypeVar

from netcheck.exporter.connections import FD_RESERVE, FDS_PER_PROBE

T = TypeVar("T")


# Exchanges at once: the descriptors left after the connections, the ladder and a reserve,
# FDS_PER_EXCHANGE each (a connect per address, the request, a DNS socket), within bounds.
FDS_PER_EXCHANGE = 4
MIN_EXCHANGES = 16
MAX_EXCHANGES = 4096


def exchange_limit(concurrency: int, max_connections: int) -> int:
    """Exchanges at once: what the descriptor limit leaves after the connections, the
    ladder's share and a reserve, ``FDS_PER_EXCHANGE`` each."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_EXCHANGES
    free = soft - FD_RESERVE - FDS_PER_PROBE * concurrency - max_connections
    return max(MIN_EXCHANGES, min(MAX_EXCHANGES, free // FDS_PER_EXCHANGE))


class ProbeLoop:
    """The event loop every probe runs on, in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="netcheck-probes")
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop; its concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """End the loop (the probes still running are cancelled) and wait for it a moment."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        self._thread.join(timeout=2)
