"""Layer 4: does the port answer, and does this host's own firewall let it?

Declared in the order the packet meets them: this host's output chain first (its finding is
the root cause when it drops or rejects the traffic: a silent SYN is then no remote
firewall's doing), then the connect, the connections already open, and with ``--scan``
nmap's identification of the service. The modules are imported below in that order, each
importing only those before it, so the rungs are declared as they always were:

- ``common``: the codes and this host's firewall in words (what several rungs share);
- ``output_chain``: ``transport.firewall``, this host's output chains;
- ``input_chain``: ``transport.input_firewall``, this host's input chains;
- ``judging``: the pure judging of the connects (also the batch sweep's and the fast probe's);
- ``connect``: ``transport.tcp``;
- ``connections``: ``transport.sockets``;
- ``service``: ``transport.service`` (nmap, with ``--scan``).

Importing this package declares every rung; the names others use are re-exported here, and so
are the old module's private helpers (tests and checks/server import some of them).
"""

from __future__ import annotations

# Each module imports only those above it: the rungs are declared in this order.
# isort: off
from netcheck.checks.transport.common import (
    CLOSED_CODES,
    FW_CODE,
    OPEN_UNEXPECTED,
    firewall_unreadable,
    remedy_commands,
)
from netcheck.checks.transport.common import _flow as _flow
from netcheck.checks.transport.common import _own_addresses as _own_addresses
from netcheck.checks.transport.output_chain import local_firewall, unique_remedies
from netcheck.checks.transport.output_chain import _flow_line as _flow_line
from netcheck.checks.transport.output_chain import _fw_hint as _fw_hint
from netcheck.checks.transport.input_chain import INPUT_CODE, input_firewall
from netcheck.checks.transport.input_chain import _peer as _peer
from netcheck.checks.transport.judging import (
    Judgement,
    describe_connect,
    judge_connects,
    judge_expectation,
)
from netcheck.checks.transport.judging import _code as _code
from netcheck.checks.transport.judging import _icmp_sender as _icmp_sender
from netcheck.checks.transport.judging import _precedence as _precedence
from netcheck.checks.transport.connect import tcp_connect
from netcheck.checks.transport.connect import _hint as _hint
from netcheck.checks.transport.connect import _local_block as _local_block
from netcheck.checks.transport.connections import current_sockets
from netcheck.checks.transport.connections import _owners_error as _owners_error
from netcheck.checks.transport.service import service_scan
from netcheck.checks.transport.service import _scan_asked as _scan_asked
from netcheck.checks.transport.service import _scan_error as _scan_error
# isort: on

__all__ = [
    "CLOSED_CODES", "FW_CODE", "OPEN_UNEXPECTED", "firewall_unreadable", "remedy_commands",
    "local_firewall", "unique_remedies", "INPUT_CODE", "input_firewall", "Judgement",
    "describe_connect", "judge_connects", "judge_expectation", "tcp_connect", "current_sockets",
    "service_scan",
]
