"""Defaults every command shares, in one place.

A module with no imports, so the argument parsers can show them without loading the runner:
:class:`netcheck.runner.Options` takes its defaults from here, and so do the parsers of
every command (``netcheck.cliutil``), the batch profile and the exporter's modules.
"""

TIMEOUT = 2.0  # seconds, for each probe
DEADLINE = 15.0  # seconds, for the whole run
# What a target's port is expected to be: "open", or "closed" (a port that must stay shut:
# the transport check passes when it refuses or drops the connection, fails when it accepts).
EXPECT = "open"
EXPECTS = ("open", "closed")
