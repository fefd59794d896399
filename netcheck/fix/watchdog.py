"""The watchdog: undoes a repair whose process died before keeping or undoing it.

``netcheck fix`` starts it (``python -I -m netcheck.fix.watchdog JOURNAL``) in a session of
its own right after the journal exists. It blocks on the journal's lock, which the repairing
process holds until it is finished; the kernel releases a ``flock`` when its holder dies, so
a SIGKILL, an out-of-memory kill or a closed terminal all wake it. Then, if the journal is
still pending, it replays every undo, last step first, exactly as ``netcheck fix --rollback``
would. A repair that ended normally has written its final state: the watchdog just leaves.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m netcheck.fix.watchdog JOURNAL``"""
    from netcheck.fix.journal import Journal, roll_back

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m netcheck.fix.watchdog JOURNAL\n")
        return 2
    # A terminal's hang-up or Ctrl-C reached the repairing process, not this one's job.
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    path = Path(args[0])
    holder = Journal(path)
    if not holder.lock(wait=True):  # blocks until the repairing process is done or dead
        return 1
    try:
        journal = Journal.open(path)
        if journal.pending and journal.belongs_here()[0]:
            roll_back(journal)
        if not journal.pending:
            holder.lock_path.unlink(missing_ok=True)
    except OSError:
        return 1
    finally:
        holder.unlock()
    return 0


if __name__ == "__main__":
    sys.exit(main())
