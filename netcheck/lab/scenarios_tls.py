"""TLS scenarios: certificates and ports that break HTTPS the ways real servers do.

Each scenario gives the server namespace one more address pair (198.18.2.20-29 and
2001:db8:2::20-29), a name for it in lab.test (``tls-expired.lab.test``…), certificates made
at apply time by the lab's own CA, and starts :mod:`netcheck.lab.tlsserver` on port 443 of
that address. One scenario is applied per lab (as every test does), so scenarios that never
meet may share an address.

**The lab CA reaches netcheck through the scenario's arguments.** Certificates live in
``<lab.state_dir>/pki/`` (``ca.crt``, the server's, ``client.crt``/``client.key`` for mutual
TLS); :func:`lab_ca_path` names the CA file. The lab directory differs per lab, so
``Scenario.args`` hold placeholders — ``{lab_ca}``, ``{client_cert}``, ``{client_key}`` — that
:meth:`TlsScenario.netcheck_argv` replaces with the paths of the lab the scenario was last
applied to (or of the lab passed to it). Every caller applies a scenario before asking for
its arguments, so ``run_netcheck(lab, *scenario.netcheck_argv())`` works unchanged.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from netcheck.lab.pki import Issued, LabCA
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import Lab, LabError, python_argv

PORT = 443
READY_TIMEOUT = 10.0
_CAS: weakref.WeakKeyDictionary[Lab, LabCA] = weakref.WeakKeyDictionary()
PLACEHOLDERS = {"{lab_ca}": "ca.crt", "{client_cert}": "client.crt", "{client_key}": "client.key"}


def pki_dir(lab: Lab) -> Path:
    """Where the lab's certificates and keys are written."""
    return Path(lab.state_dir) / "pki"


def lab_ca_path(lab: Lab) -> Path:
    """The lab CA's certificate (what ``--cafile`` must name to trust the lab's servers)."""
    return pki_dir(lab) / "ca.crt"


def lab_ca(lab: Lab) -> LabCA:
    """The lab's CA, made on first use (one per lab, like a campus CA)."""
    ca = _CAS.get(lab)
    if ca is None:
        ca = _CAS[lab] = LabCA(pki_dir(lab))
    return ca


def client_certificate(lab: Lab) -> Issued:
    """A client certificate issued by the lab CA (``client.crt`` / ``client.key``)."""
    return lab_ca(lab).issue("client", ["client.lab.test"], client=True)


def resolve_args(args: tuple[str, ...], state_dir: Optional[str]) -> list[str]:
    """Replace ``{lab_ca}``, ``{client_cert}`` and ``{client_key}`` by real paths."""
    out = []
    for arg in args:
        for marker, filename in PLACEHOLDERS.items():
            if marker in arg and state_dir:
                arg = arg.replace(marker, str(Path(state_dir) / "pki" / filename))
        out.append(arg)
    return out


@dataclass(frozen=True)
class TlsScenario(Scenario):
    """A scenario whose arguments may name files of the lab it is applied to."""

    applied: dict[str, str] = field(default_factory=dict, compare=False, hash=False,
                                    repr=False)

    def netcheck_argv(self, lab: Union[Lab, str, Path, None] = None  # type: ignore[override]
                      ) -> list[str]:
        """Arguments for netcheck, with the placeholders resolved for ``lab`` — a Lab or its
        state directory (what ``netcheck lab check`` finds on disk) — by default the lab
        this scenario was last applied to in this process."""
        if lab is None:
            state_dir = self.applied.get("state_dir")
        else:
            state_dir = str(lab if isinstance(lab, (str, Path)) else lab.state_dir)  # Lab-like
        return [self.target, *resolve_args(self.args, state_dir)]


# -- servers -----------------------------------------------------------------------------------

def addresses(slot: int) -> tuple[str, str]:
    """The IPv4 and IPv6 address of a slot (0-9)."""
    if not 0 <= slot <= 9:
        raise LabError(f"TLS slot {slot} is outside 198.18.2.20-29")
    return f"198.18.2.{20 + slot}", f"2001:db8:2::{20 + slot}"


def start_server(lab: Lab, slot: int, name: str, mode: str = "tls",
                 issued: Optional[Issued] = None, *extra: str, port: int = PORT) -> None:
    """Give the server an address pair and a DNS name, and run the TLS server on ``port``."""
    v4, v6 = addresses(slot)
    lab.add_server_address(v4)
    lab.add_server_address(v6)
    fqdn = f"{name}.lab.test."
    lab.add_dns_records((fqdn, "A", [v4]), (fqdn, "AAAA", [v6]))
    label = f"tls-{name}"
    ready = Path(lab.state_dir) / f"{label}.ready"
    ready.unlink(missing_ok=True)
    argv = python_argv("-m", "netcheck.lab.tlsserver", "--mode", mode,
                       "--listen", f"{v4}:{port}", "--listen", f"[{v6}]:{port}",
                       "--ready", str(ready))
    if issued is not None:
        argv += ["--cert", str(issued.cert), "--key", str(issued.key)]
    argv += list(extra)
    proc = lab.popen("server", argv, name=label, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None:
            raise LabError(f"{label} exited with {proc.returncode}:\n{lab.log(label)}")
        if time.monotonic() > deadline:
            raise LabError(f"{label} not listening after {READY_TIMEOUT:g} s:\n{lab.log(label)}")
        time.sleep(0.005)


def _tls_server(slot: int, name: str, *extra: str, client_ca: bool = False,
                **issue: Any) -> Callable[[Lab], None]:
    """A TLS server whose certificate the lab CA issues with ``issue`` (names, dates…)."""

    def apply(lab: Lab) -> None:
        ca = lab_ca(lab)
        v4, v6 = addresses(slot)
        # By default the certificate names the host and both its addresses, as a real one
        # for a name-based site would name the host only: IP literals verify too.
        names = list(issue.get("names") or [f"{name}.lab.test", v4, v6])
        options = {k: v for k, v in issue.items() if k != "names"}
        issued = ca.issue(f"server-{name}", names, **options)
        more = list(extra)
        if client_ca:
            client_certificate(lab)
            more += ["--client-ca", str(ca.files.cert)]
        start_server(lab, slot, name, "tls", issued, *more)

    return apply


def _other_server(slot: int, name: str, mode: str, *extra: str) -> Callable[[Lab], None]:
    """Something that is not a TLS server, listening on port 443."""

    def apply(lab: Lab) -> None:
        lab_ca(lab)  # the CA exists in every TLS scenario, so --cafile always names a file
        start_server(lab, slot, name, mode, None, *extra)

    return apply


def _s(name: str, description: str, symptom: str, host: str, apply: Callable[[Lab], None],
       verdict: str, code: Optional[str] = None, args: tuple[str, ...] = ()) -> TlsScenario:
    applied: dict[str, str] = {}

    def record_and_apply(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        apply(lab)

    layer = 6 if code else None
    return TlsScenario(name, description, symptom, f"https://{host}.lab.test/",
                       record_and_apply, Expect(verdict, code, layer), args, applied=applied)


CAFILE = ("--cafile", "{lab_ca}")

SCENARIOS_LIST: list[Scenario] = [
    _s("tls_ok",
       "A healthy HTTPS server with a certificate from the lab CA, which netcheck is given "
       "with --cafile.",
       "https://tls-ok.lab.test/ loads without any warning.",
       "tls-ok", _tls_server(0, "tls-ok"), "ok", args=CAFILE),
    _s("tls_expired",
       "The server's certificate expired ten days ago and nobody renewed it.",
       "Browsers show 'Your connection is not private' (NET::ERR_CERT_DATE_INVALID); curl "
       "says 'certificate has expired'.",
       "tls-expired", _tls_server(1, "tls-expired", days_valid=30, starts_in_days=-40),
       "broken", "TLS_CERT_EXPIRED", CAFILE),
    _s("tls_not_yet_valid",
       "The certificate only becomes valid in ten days (issued with a wrong clock).",
       "curl says 'certificate is not yet valid'; browsers show a date error.",
       "tls-future", _tls_server(2, "tls-future", starts_in_days=10),
       "broken", "TLS_CERT_EXPIRED", CAFILE),
    _s("tls_expiring",
       "The certificate is valid but expires in five days: renewal did not run.",
       "Nothing yet: everything works, until next week.",
       "tls-expiring", _tls_server(3, "tls-expiring", days_valid=85, starts_in_days=-80),
       "degraded", "TLS_CERT_EXPIRING", CAFILE),
    _s("tls_self_signed",
       "The server presents a self-signed certificate that no CA vouches for.",
       "Browsers warn; curl says 'self-signed certificate'.",
       "tls-selfsigned", _tls_server(4, "tls-selfsigned", self_signed=True),
       "broken", "TLS_CERT_UNTRUSTED"),
    _s("tls_unknown_ca",
       "The certificate comes from the lab (campus) CA, which this host does not trust: "
       "netcheck is run without --cafile.",
       "curl says 'unable to get local issuer certificate'.",
       "tls-unknownca", _tls_server(5, "tls-unknownca"), "broken", "TLS_CERT_UNTRUSTED"),
    _s("tls_wrong_host",
       "The server presents the certificate of another site (www-other.lab.test).",
       "Browsers show NET::ERR_CERT_COMMON_NAME_INVALID; curl says 'no alternative "
       "certificate subject name matches'.",
       "tls-wronghost", _tls_server(6, "tls-wronghost", names=["www-other.lab.test"]),
       "broken", "TLS_CERT_HOSTNAME_MISMATCH", CAFILE),
    _s("tls_client_cert_required",
       "The server uses mutual TLS: it demands a client certificate from the lab CA, and "
       "netcheck is run without one.",
       "curl fails with 'tlsv13 alert certificate required' after the handshake.",
       "tls-mtls", _tls_server(7, "tls-mtls", client_ca=True),
       "broken", "TLS_CLIENT_CERT_REQUIRED", CAFILE),
    _s("tls_client_cert_given",
       "The same mutual-TLS server, and netcheck is given a client certificate from the lab "
       "CA with --cert/--key (no fault).",
       "Nothing: the page loads with the client certificate.",
       "tls-mtls", _tls_server(7, "tls-mtls", client_ca=True), "ok",
       args=(*CAFILE, "--cert", "{client_cert}", "--key", "{client_key}")),
    _s("tls_plain_http_on_443",
       "A plain HTTP server listens on port 443 (TLS was never enabled on it).",
       "Browsers say 'SSL_ERROR_RX_RECORD_TOO_LONG'; curl says 'wrong version number'.",
       "tls-plainhttp", _other_server(8, "tls-plainhttp", "plain-http"),
       "broken", "TLS_PROTOCOL_MISMATCH"),
    _s("tls_ssh_on_443",
       "An SSH server listens on port 443 (to get through firewalls), not a web server.",
       "curl says 'wrong version number'; `nc host 443` shows an SSH banner.",
       "tls-ssh", _other_server(9, "tls-ssh", "ssh-banner"),
       "broken", "TLS_PROTOCOL_MISMATCH"),
    _s("tls_version_mismatch",
       "An old server that speaks only TLS 1.0, which current clients (OpenSSL 3) refuse.",
       "curl says 'tlsv1 alert protocol version'; old browsers still work.",
       "tls-old", _tls_server(2, "tls-old", "--min-version", "1.0", "--max-version", "1.0"),
       "broken", "TLS_HANDSHAKE_FAILED", CAFILE),
    _s("tls_garbage",
       "Something on port 443 answers every connection with a megabyte of random binary.",
       "curl says 'wrong version number' or 'record layer failure'.",
       "tls-garbage", _other_server(4, "tls-garbage", "garbage"),
       "broken", "TLS_PROTOCOL_MISMATCH"),
    _s("tls_silent",
       "The service on port 443 accepts connections but never says anything (hung).",
       "curl hangs after 'Connected' and times out in the TLS handshake.",
       "tls-silent", _other_server(5, "tls-silent", "silent"),
       "broken", "TLS_HANDSHAKE_FAILED", ("--timeout", "1")),
]


def _register_late() -> None:
    """Add these scenarios to the library if it was built before this module finished.

    ``netcheck.lab.scenarios`` gathers the area modules when it is first imported; when this
    module is imported first, that gathering saw it half-initialised (no SCENARIOS_LIST yet).
    """
    base = sys.modules.get("netcheck.lab.scenarios")
    table = getattr(base, "SCENARIOS", None)
    if isinstance(table, dict):
        for scenario in SCENARIOS_LIST:
            table.setdefault(scenario.name, scenario)


_register_late()
