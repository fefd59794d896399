"""Server mode: the slides' "Equipo Servidor" rungs, checked on the server itself.

``netcheck server --port N`` runs these beside this host's own layer 1-3 checks (the client's,
pointed at the way back to ``--client``). Declared in root-cause order within each layer:

- layer 4: the port listening (``ss -tlnp``), this host's input firewall, a local handshake
  (``nping --tcp-connect localhost``) — nothing listening explains a refused handshake, a
  dropped port explains clients that time out;
- layer 7: the service's systemd unit (``systemctl status``), its process (``ps aux``), and
  the client's request in its log — a stopped unit explains a missing process, which
  explains a request that never got an answer.

What they judge is measured by ``netcheck.server.measure`` (the socket table, the unit's
state, the processes, the containers, the inbound flows, the log sources), each once per run
through ``ctx.memo``, whichever check asks first; these modules judge and word the findings:

- ``common``: what the rungs share (the port's name, the commands and owners in hints);
- ``listen``: ``transport.listen``, ``transport.container_listen``;
- ``inbound``: ``transport.inbound_firewall``, ``transport.local_handshake``;
- ``service``: ``app.container``, ``app.service_unit``, ``app.process``;
- ``request_logs``: ``app.request_log``.

They are imported below in that order, the order the rungs are declared in; the names
others use are re-exported here.
"""

from __future__ import annotations

# The rungs are declared in this order (root-cause order within each layer).
# isort: off
from netcheck.checks.server.common import SERVER
from netcheck.checks.server.listen import container_listening, port_listening
from netcheck.checks.server.inbound import (
    first_failed_handshake,
    inbound_firewall,
    judge_handshakes,
    local_handshake,
)
from netcheck.checks.server.service import container_running, service_process, service_unit
from netcheck.checks.server.request_logs import request_log
# isort: on

__all__ = [
    "SERVER", "container_listening", "port_listening", "first_failed_handshake",
    "inbound_firewall", "judge_handshakes", "local_handshake", "container_running",
    "service_process", "service_unit", "request_log",
]
