"""Layer 7: the application protocol answers as it should (HTTP, SMTP, POP3, IMAP, SSH, DNS).

The slides' last rungs: ``wget`` shows the redirect chain and the status, ``nc`` and ``swaks``
show a greeting, and the server's log finds the request (netcheck's User-Agent carries the
run's request id for that). Every check here starts where transport (and, for TLS schemes,
the presentation layer) said the port works, so what is left is the application itself:
a status, a greeting, a rejection, silence, or another protocol on the port.

The package, by concern, imported below in that order so the rungs are declared as they
always were (the order is the root-cause tie-break): ``common`` (the schemes, what a port
was heard to speak, the server that resets before its first byte, TLS failing under the
application), ``web`` (``http.response``), ``greetings`` (``app.protocol``),
``identification`` (``app.banner``). Importing this package declares the three rungs; every
name importable from ``netcheck.checks.application`` before the split is re-exported here.
"""

from __future__ import annotations

# Each module imports only common: the checks are declared in this order.
# isort: off
from netcheck.checks.application.common import (
    GREETING_SCHEMES,
    HEARD,
    HTTP_SCHEMES,
    NAMES,
    PROTOCOL_OF,
    PROTOCOL_SCHEMES,
    REJECTED,
    RESERVE,
    RESET,
    REWATCH_S,
    TLS_REQUIRES,
    TLS_SCHEMES,
)
from netcheck.checks.application.web import (
    PHASES,
    _chain_text,
    _size,
    _status_text,
    _timings_sum,
    http_response,
)
from netcheck.checks.application.greetings import app_protocol
from netcheck.checks.application.identification import app_banner
# isort: on


# Every public name the module had before it became a package.
__all__ = [
    "GREETING_SCHEMES", "HEARD", "HTTP_SCHEMES", "NAMES", "PHASES", "PROTOCOL_OF",
    "PROTOCOL_SCHEMES", "REJECTED", "RESERVE", "RESET", "REWATCH_S", "TLS_REQUIRES",
    "TLS_SCHEMES", "app_banner", "app_protocol", "http_response",
    # private, reached from outside (fastprobe reads _chain_text, _size, _status_text and
    # _timings_sum)
    "_chain_text", "_size", "_status_text", "_timings_sum",
]
