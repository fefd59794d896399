"""``netcheck fix``: from a proved root cause to a repair that is tried, verified and undone.

The pieces, each testable alone:

- :mod:`netcheck.fix.actions` — what a step does and undoes: an argv run (never a shell), a
  file written or removed only when it still holds what was read, an nft rule deleted by the
  tag it was inserted with. Every action is JSON, so a journal can replay it later.
- :mod:`netcheck.fix.prove` — proof gathered before planning: a replacement gateway must
  answer on the link *and* forward a probe to the flow's destination that gets answered; a
  resolver must answer a query. Candidates come from DHCP leases, the network manager, the
  neighbour table and the prefix's usual router addresses; none is used unproved.
- :mod:`netcheck.fix.owners` — who owns the configuration (NetworkManager, systemd-networkd,
  ifupdown, systemd-resolved, resolvconf, nobody) and the argv each owner wants.
- :mod:`netcheck.fix.plan` — pure: the report's root cause and evidence, the host's state and
  the proofs in; a plan of steps ``{do, undo, why}`` or advice (whom to ask, and a paragraph
  for the ticket) out.
- :mod:`netcheck.fix.journal` — every undo written to ``/var/lib/netcheck/fix/`` *before* its
  step runs; a watchdog process and ``netcheck fix --rollback`` replay what was left behind.
- :mod:`netcheck.fix.command` — the CLI: plan, confirm, apply, diagnose again, keep or roll
  back (like ``netplan try``).
"""
