"""Application-layer scenarios: web, mail, SSH and DNS services that answer badly.

Each service gets its own address pair on the server (198.18.2.30-49 and 2001:db8:2::30-49)
and a name in lab.test, and runs :mod:`netcheck.lab.appserver` (one process per mode and
host). Services are started once per lab and shared: the scenarios only add to the lab, so
any number of them can be applied to one lab (the application tests do that to stay fast).

=========================  ======================  ===========================================
host                       address                 services
=========================  ======================  ===========================================
``web.lab.test``           198.18.2.30 / ::30      http 80, https 443 (lab CA), ssh 22
``silent.lab.test``        198.18.2.31 / ::31      accepts on 80, never speaks
``misport.lab.test``       198.18.2.32 / ::32      ssh on 80, http on 25
``binary.lab.test``        198.18.2.33 / ::33      random bytes on 80
``mail.lab.test``          198.18.2.35 / ::35      smtp 25 and 587 (STARTTLS), pop3s 995,
                                                   imaps 993
``reject.lab.test``        198.18.2.36 / ::36      smtp 554, pop3 -ERR, imap * BYE
=========================  ======================  ===========================================

HTTPS and STARTTLS use a CA of their own in ``<lab.state_dir>/pki-app/``; arguments hold the
placeholder ``{app_ca}``, which :meth:`AppScenario.netcheck_argv` replaces with the CA of the
lab the scenario was last applied to (or of the lab passed in).
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from netcheck.lab.pki import Issued, LabCA
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import DNS_V4, Lab, LabError, python_argv

READY_TIMEOUT = 10.0
HOSTS = {"web": 30, "silent": 31, "misport": 32, "binary": 33, "mail": 35, "reject": 36}
CA_PLACEHOLDER = "{app_ca}"
CAFILE = ("--cafile", CA_PLACEHOLDER)

# What has been set up in each lab: hosts (addresses and names), servers (by label).
_DONE: weakref.WeakKeyDictionary[Lab, set[str]] = weakref.WeakKeyDictionary()
_CAS: weakref.WeakKeyDictionary[Lab, LabCA] = weakref.WeakKeyDictionary()
_CERTS: weakref.WeakKeyDictionary[Lab, dict[str, Issued]] = weakref.WeakKeyDictionary()


def addresses(host: str) -> tuple[str, str]:
    """The IPv4 and IPv6 address of one of the application hosts."""
    slot = HOSTS[host]
    return f"198.18.2.{slot}", f"2001:db8:2::{slot}"


def fqdn(host: str) -> str:
    return f"{host}.lab.test"


def app_ca_path(lab: Lab) -> Path:
    """The CA certificate that verifies the application servers (what --cafile must name)."""
    return Path(lab.state_dir) / "pki-app" / "ca.crt"


def app_ca(lab: Lab) -> LabCA:
    ca = _CAS.get(lab)
    if ca is None:
        ca = _CAS[lab] = LabCA(Path(lab.state_dir) / "pki-app", "netcheck lab application CA")
    return ca


def server_label(host: str, mode: str, ports: tuple[int, ...]) -> str:
    """The popen() name of a server, and so its log: ``lab.log(server_label(...))``."""
    return f"app-{host}-{mode}-{'-'.join(map(str, ports))}"


def _done(lab: Lab) -> set[str]:
    return _DONE.setdefault(lab, set())


def _ensure_host(lab: Lab, host: str) -> None:
    if f"host:{host}" in _done(lab):
        return
    v4, v6 = addresses(host)
    lab.add_server_address(v4)
    lab.add_server_address(v6)
    lab.add_dns_records((fqdn(host) + ".", "A", [v4]), (fqdn(host) + ".", "AAAA", [v6]))
    _done(lab).add(f"host:{host}")


def _certificate(lab: Lab, host: str) -> Issued:
    """The host's certificate (its name and both addresses), issued once per lab."""
    issued = _CERTS.setdefault(lab, {})
    if host not in issued:
        v4, v6 = addresses(host)
        issued[host] = app_ca(lab).issue(f"server-{host}", [fqdn(host), v4, v6])
    return issued[host]


@dataclass(frozen=True)
class Service:
    """One appserver process: a mode on some ports of a host, TLS from the start or STARTTLS."""

    host: str
    mode: str
    ports: tuple[int, ...]
    tls: bool = False
    starttls: bool = False

    @property
    def label(self) -> str:
        return server_label(self.host, self.mode, self.ports)


def start_services(lab: Lab, *services: Service) -> None:
    """Start the services not yet running in this lab, all at once, and wait until they listen."""
    pending = []
    for svc in services:
        if f"server:{svc.label}" in _done(lab):
            continue
        _ensure_host(lab, svc.host)
        v4, v6 = addresses(svc.host)
        listen = ",".join(f"{v4}:{p},[{v6}]:{p}" for p in svc.ports)
        ready = Path(lab.state_dir) / f"{svc.label}.ready"
        ready.unlink(missing_ok=True)
        argv = python_argv("-m", "netcheck.lab.appserver", "--listen", listen,
                           "--mode", svc.mode, "--name", fqdn(svc.host), "--ready", str(ready))
        if svc.tls or svc.starttls:
            issued = _certificate(lab, svc.host)
            argv += ["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]
            if svc.starttls:
                argv.append("--starttls")
        proc = lab.popen("server", argv, name=svc.label,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        pending.append((svc.label, ready, proc))
        _done(lab).add(f"server:{svc.label}")
    deadline = time.monotonic() + READY_TIMEOUT
    while pending:
        for item in list(pending):
            label, ready, proc = item
            if ready.exists():
                pending.remove(item)
            elif proc.poll() is not None:
                raise LabError(f"{label} exited with {proc.returncode}:\n{lab.log(label)}")
        if pending and time.monotonic() > deadline:
            raise LabError(f"not listening after {READY_TIMEOUT:g} s: "
                           f"{', '.join(p[0] for p in pending)}")
        if pending:
            time.sleep(0.005)


# The services, by what scenarios need.
WEB_HTTP = Service("web", "http", (80,))
WEB_HTTPS = Service("web", "http", (443,), tls=True)
WEB_SSH = Service("web", "ssh", (22,))
SILENT_80 = Service("silent", "silent", (80,))
SSH_ON_80 = Service("misport", "ssh", (80,))
HTTP_ON_25 = Service("misport", "http", (25,))
BINARY_80 = Service("binary", "binary", (80,))
MAIL_SMTP = Service("mail", "smtp", (25, 587), starttls=True)
MAIL_POP3S = Service("mail", "pop3", (995,), tls=True)
MAIL_IMAPS = Service("mail", "imap", (993,), tls=True)
REJECT_SMTP = Service("reject", "smtp-reject", (25,))
REJECT_POP3 = Service("reject", "pop3-reject", (110,))
REJECT_IMAP = Service("reject", "imap-bye", (143,))


@dataclass(frozen=True)
class AppScenario(Scenario):
    """A scenario whose arguments may name the lab's application CA (``{app_ca}``)."""

    applied: dict[str, str] = field(default_factory=dict, compare=False, hash=False,
                                    repr=False)

    def netcheck_argv(self, lab: Any = None) -> list[str]:
        """Arguments for netcheck with ``{app_ca}`` resolved for ``lab`` (by default the lab
        this scenario was last applied to)."""
        state_dir = str(lab.state_dir) if lab is not None else self.applied.get("state_dir")
        ca = str(Path(state_dir) / "pki-app" / "ca.crt") if state_dir else CA_PLACEHOLDER
        return [self.target, *(a.replace(CA_PLACEHOLDER, ca) for a in self.args)]


def _s(name: str, description: str, symptom: str, target: str, services: tuple[Service, ...],
       verdict: str, code: Optional[str] = None, args: tuple[str, ...] = ()) -> AppScenario:
    applied: dict[str, str] = {}

    def apply(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        if CA_PLACEHOLDER in args:
            app_ca(lab)  # --cafile must name a file even where no server uses TLS
        start_services(lab, *services)

    return AppScenario(name, description, symptom, target, apply,
                       Expect(verdict, code, 7 if code else None), args, applied=applied)


SCENARIOS_LIST: list[Scenario] = [
    _s("http_ok", "A web server answers 200 OK for its home page.",
       "wget http://web.lab.test/ saves the page.",
       "http://web.lab.test/", (WEB_HTTP,), "ok"),
    _s("http_404", "The page asked for does not exist on the web server.",
       "The browser shows '404 Not Found'.",
       "http://web.lab.test/missing", (WEB_HTTP,), "broken", "HTTP_CLIENT_ERROR"),
    _s("http_503", "The application behind the web server is down: it answers 503.",
       "The browser shows '503 Service Temporarily Unavailable'.",
       "http://web.lab.test/broken", (WEB_HTTP,), "broken", "HTTP_SERVER_ERROR"),
    _s("http_redirect_loop", "/loop redirects to /loop-again, which redirects back to /loop.",
       "The browser gives up with 'too many redirects' (ERR_TOO_MANY_REDIRECTS).",
       "http://web.lab.test/loop", (WEB_HTTP,), "broken", "HTTP_REDIRECT_LOOP"),
    _s("http_redirect_to_https",
       "The http page redirects to https (a new connection), then to / on the same connection.",
       "Nothing: wget follows http -> https -> / and saves the page, as in the slides.",
       "http://web.lab.test/to-https", (WEB_HTTP, WEB_HTTPS), "ok", args=CAFILE),
    _s("http_silent", "The web server accepts connections but its application never answers.",
       "The browser spins on 'Waiting for web.lab.test...' and times out.",
       "http://silent.lab.test/", (SILENT_80,), "broken", "APP_TIMEOUT",
       ("--timeout", "1")),
    _s("http_drip", "The web server sends its answer one byte a second (a trickle).",
       "The page starts loading and never finishes.",
       "http://web.lab.test/drip", (WEB_HTTP,), "broken", "APP_TIMEOUT", ("--timeout", "1")),
    _s("http_protocol_mismatch", "An SSH server listens on port 80 instead of a web server.",
       "The browser says 'invalid response'; curl prints 'SSH-2.0-OpenSSH...'.",
       "http://misport.lab.test/", (SSH_ON_80,), "broken", "APP_PROTOCOL_MISMATCH"),
    _s("http_hostile_headers", "The web server answers with 1 MiB of response headers.",
       "curl: 'Too large response headers'; browsers show an error page.",
       "http://web.lab.test/hugeheaders", (WEB_HTTP,), "broken", "APP_PROTOCOL_MISMATCH"),
    _s("http_endless_body", "The web server answers 200 with a body that never ends.",
       "The download never finishes (netcheck reads 1 MiB and stops).",
       "http://web.lab.test/endless", (WEB_HTTP,), "ok"),
    _s("http_binary", "The program on port 80 sends random binary data on connect.",
       "The browser shows garbage or 'invalid response'.",
       "http://binary.lab.test/", (BINARY_80,), "broken", "APP_PROTOCOL_MISMATCH"),
    _s("smtp_ok", "A mail server greets with 220 and offers STARTTLS (lab CA certificate).",
       "swaks --server mail.lab.test --quit-after EHLO shows 220 and 250-STARTTLS.",
       "smtp://mail.lab.test", (MAIL_SMTP,), "ok", args=CAFILE),
    _s("smtp_rejected", "The mail server refuses this client: its greeting is 554.",
       "The mail client reports '554 5.7.1 no SMTP service here'.",
       "smtp://reject.lab.test", (REJECT_SMTP,), "broken", "SMTP_REJECTED"),
    _s("smtp_http_on_25", "A web server listens on port 25: it waits and answers in HTTP.",
       "The mail client waits for a greeting that never comes.",
       "smtp://misport.lab.test", (HTTP_ON_25,), "broken", "APP_PROTOCOL_MISMATCH",
       ("--timeout", "1")),
    _s("pop3_rejected", "The POP3 server answers -ERR to every connection.",
       "The mail client says the server refused the connection.",
       "pop3://reject.lab.test", (REJECT_POP3,), "broken", "POP3_REJECTED"),
    _s("pop3s_ok", "A POP3 server over TLS (port 995) greets with +OK.",
       "Thunderbird fetches mail over POP3S.",
       "pop3s://mail.lab.test", (MAIL_POP3S,), "ok", args=CAFILE),
    _s("imap_rejected", "The IMAP server says '* BYE' as soon as a client connects.",
       "The mail client reports 'too many connections'.",
       "imap://reject.lab.test", (REJECT_IMAP,), "broken", "IMAP_REJECTED"),
    _s("imaps_ok", "An IMAP server over TLS (port 993) greets with '* OK'.",
       "Thunderbird lists the folders over IMAPS.",
       "imaps://mail.lab.test", (MAIL_IMAPS,), "ok", args=CAFILE),
    _s("ssh_ok", "An SSH server answers with its version line.",
       "ssh web.lab.test asks for a password.",
       "ssh://web.lab.test", (WEB_SSH,), "ok"),
    # Nothing to start: the lab's own name server is the target.
    _s("dns_target_ok", "The lab's name server, asked directly, answers for its zone.",
       "dig @198.18.3.53 lab.test SOA shows the zone's SOA record.",
       f"dns://{DNS_V4}", (), "ok"),
]
