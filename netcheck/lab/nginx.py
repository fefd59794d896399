"""nginx from Debian as a real lab web server, one instance per site, inside the server namespace.

A *site* is an address pair on the server (198.18.2.50-59 and 2001:db8:2::50-59), a name in
lab.test, HTTP on port 80 and/or HTTPS on 443 (or plain HTTP on 443, by mistake), and a
certificate made at start time by the lab's nginx CA (``<lab.state_dir>/pki-nginx/``): valid,
expired, for the wrong name, or self-signed; optionally demanding a client certificate
(``ssl_verify_client on``). Every site serves the same paths::

    /            200, a small HTML page
    /missing     404 (no such file: nginx's own error page and error-log line)
    /broken      503 (``return 503``: the application behind is down)
    /loop        302 -> /loop-again -> /loop ... (a redirect loop)
    /to-https    301 -> https://<name>/ (the slides' http -> https redirect)
    /big         a 2 MiB static file (big enough to stall on a path-MTU black hole)

nginx never reads ``/etc/nginx``: :func:`start_nginx` writes a configuration of its own into
``<lab.state_dir>/nginx/<name>/`` with the PID file, the access and error logs, the document
root and every temporary path beside it, and runs ``nginx -p DIR -c DIR/nginx.conf`` with
``daemon off; master_process on;`` through ``lab.popen`` in the server namespace: the Popen PID
is the master's, so the lab's teardown ends it (and the master its workers) by PID. It listens
only on the site's own addresses, never on a wildcard and never in the root namespace.

The access log is the ``combined`` format plus ``$request_time``; its User-Agent field carries
the request id netcheck sends (``netcheck/VERSION (+ID)``), so a test, or ``netcheck server
--request-id``, finds the client's request in it::

    198.18.1.2 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 151 "-"
        "netcheck/0.1.0 (+ID)" 0.000        (one line in the file)

Install: Debian 12's ``nginx`` package (ssl and realip built in); ``make deps`` installs it with
a policy-rc.d that forbids starting the host's own nginx service (tools/ensure_debs.py).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import struct
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from netcheck.lab.pki import Issued, LabCA
from netcheck.lab.topology import Lab, LabError, python_argv
from netcheck.safefile import open_for_write

READY_TIMEOUT = 10.0
BIG_SIZE = 2 * 1024 * 1024  # /big: far more than any window, so a black hole must stall it
FIRST_SLOT = 50  # sites live at 198.18.2.50-59 and 2001:db8:2::50-59
CERTIFICATES = ("valid", "expired", "wrong_name", "self_signed")
WRONG_NAME = "www-other.lab.test"  # whose certificate a "wrong_name" site presents
LOG_FORMAT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
              '"$http_referer" "$http_user_agent" $request_time')
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
# The temporary folders nginx is built with (/var/lib/nginx/...): each one is overridden,
# or nginx would create and use it on the host.
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

_SITES: weakref.WeakKeyDictionary[Lab, dict[str, NginxSite]] = weakref.WeakKeyDictionary()
_CAS: weakref.WeakKeyDictionary[Lab, LabCA] = weakref.WeakKeyDictionary()
_CLIENTS: weakref.WeakKeyDictionary[Lab, Issued] = weakref.WeakKeyDictionary()


# -- what a site is ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    """What one nginx serves: a name in lab.test on an address pair, and its TLS set-up."""

    name: str  # host label: the site is <name>.lab.test
    slot: int  # 0-9: 198.18.2.5<slot> and 2001:db8:2::5<slot>
    http: bool = True  # plain HTTP on port 80
    https: bool = True  # TLS on port 443
    certificate: str = "valid"  # valid | expired | wrong_name | self_signed
    client_cert_required: bool = False  # ssl_verify_client on, client CA = the nginx CA
    plain_on_443: bool = False  # plain HTTP on 443 (TLS never enabled): instead of https

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise LabError(f"site name {self.name!r}: lower-case letters, digits and '-' only")
        if not 0 <= self.slot <= 9:
            raise LabError(f"site slot {self.slot} is outside 198.18.2.50-59")
        if self.certificate not in CERTIFICATES:
            raise LabError(f"certificate {self.certificate!r}: one of {', '.join(CERTIFICATES)}")
        if self.plain_on_443 and self.https:
            raise LabError("a site speaks either TLS or plain HTTP on port 443, not both")
        if self.client_cert_required and not self.https:
            raise LabError("client_cert_required needs https")
        if not (self.http or self.https or self.plain_on_443):
            raise LabError(f"site {self.name} listens on no port")

    @property
    def fqdn(self) -> str:
        """The site's name, ``<name>.lab.test``."""
        return f"{self.name}.lab.test"

    @property
    def addresses(self) -> tuple[str, str]:
        """The site's IPv4 and IPv6 address."""
        return f"198.18.2.{FIRST_SLOT + self.slot}", f"2001:db8:2::{FIRST_SLOT + self.slot}"

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports nginx listens on for this site."""
        return (*((80,) if self.http else ()), *((443,) if self.https or self.plain_on_443 else ()))


@dataclass(frozen=True)
class NginxSite:
    """A running nginx: where its files are, and how to reach it."""

    site: Site
    folder: Path  # everything of this nginx: config, PID file, logs, document root, temp
    config: Path
    pid_file: Path
    access_log: Path
    error_log: Path
    root: Path  # document root (index.html, big)
    certificate: Optional[Issued]  # the server certificate, None without TLS
    ca_file: Path  # the nginx CA (what --cafile must name)
    label: str  # lab.popen name: lab.log(label) holds nginx's own stderr
    pid: int  # the master process

    @property
    def fqdn(self) -> str:
        """``<name>.lab.test``."""
        return self.site.fqdn

    @property
    def addresses(self) -> tuple[str, str]:
        """The IPv4 and IPv6 address nginx listens on."""
        return self.site.addresses

    def url(self, path: str = "/", scheme: Optional[str] = None) -> str:
        """``scheme://<name>.lab.test/path`` (https where the site speaks TLS)."""
        scheme = scheme or ("https" if self.site.https else "http")
        return f"{scheme}://{self.fqdn}{path}"

    def access_lines(self) -> list[str]:
        """The access log's lines so far (nginx writes each when the request is done)."""
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []


# -- certificates ------------------------------------------------------------------------------

def pki_dir(lab: Any) -> Path:
    """Where the nginx sites' certificates and keys are written (``<state_dir>/pki-nginx``)."""
    return Path(lab.state_dir) / "pki-nginx"


def nginx_ca_path(lab: Any) -> Path:
    """The nginx CA's certificate: what ``--cafile`` (or ``curl --cacert``) must name."""
    return pki_dir(lab) / "ca.crt"


def nginx_ca(lab: Lab) -> LabCA:
    """The CA of the lab's nginx sites, made on first use (one per lab)."""
    ca = _CAS.get(lab)
    if ca is None:
        ca = _CAS[lab] = LabCA(pki_dir(lab), "netcheck lab nginx CA")
    return ca


def client_certificate(lab: Lab) -> Issued:
    """A client certificate from the nginx CA (``client.crt``/``client.key``), made once."""
    issued = _CLIENTS.get(lab)
    if issued is None:
        issued = _CLIENTS[lab] = nginx_ca(lab).issue("client", ["client.lab.test"], client=True)
    return issued


def _server_certificate(lab: Lab, site: Site) -> Issued:
    ca = nginx_ca(lab)
    v4, v6 = site.addresses
    # A real name-based site's certificate names the host; the addresses let an IP-literal
    # URL verify as well.
    names = [WRONG_NAME] if site.certificate == "wrong_name" else [site.fqdn, v4, v6]
    options: dict[str, Any] = {}
    if site.certificate == "expired":
        options = {"days_valid": 30, "starts_in_days": -40}  # expired ten days ago
    elif site.certificate == "self_signed":
        options = {"self_signed": True}
    return ca.issue(f"server-{site.name}", names, **options)


# -- configuration -----------------------------------------------------------------------------

def nginx_binary() -> str:
    """Absolute path of Debian's nginx, or LabError saying how to install it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise LabError("nginx not found: install Debian's `nginx` package (make deps does, "
                       "with a policy-rc.d that keeps the host's own service stopped)")
    return found


def nginx_problem() -> Optional[str]:
    """Why nginx sites cannot run here, or None."""
    try:
        nginx_binary()
    except LabError as exc:
        return str(exc)
    return None


def _worker_user(folder: Path) -> str:
    """``user`` directive: workers as nobody, unless nobody could not read the site's files.

    The master (root) reads the configuration, the keys and opens the logs; workers read the
    document root. Under a folder that others cannot enter (a umask of 077), they run as root.
    """
    for parent in folder.parents:
        try:
            if not parent.stat().st_mode & 0o001:
                return "root root"
        except OSError:
            return "root root"
    return "nobody nogroup"


def _quote(path: Path) -> str:
    """A path as an nginx string (the lab's own paths; quoted so spaces cannot split them)."""
    text = str(path)
    if any(c in text for c in '"\\;{}$\n'):
        raise LabError(f"path not usable in an nginx configuration: {text!r}")
    return f'"{text}"'


def render_config(site: Site, folder: Path, certificate: Optional[Issued], ca_file: Path,
                  user: str = "nobody nogroup") -> str:
    """The whole nginx.conf of one site: nothing outside ``folder`` but the certificates."""
    if site.https and certificate is None:
        raise LabError(f"site {site.name} speaks TLS: it needs a certificate")
    q = _quote
    temp = "\n".join(f"    {kind}_temp_path {q(folder / 'tmp' / kind)};" for kind in TEMP_PATHS)
    server = "\n".join(f"        {line}" for line in [
        *_listens(site), f"server_name {site.fqdn};", f"root {q(folder / 'html')};",
        *_tls_directives(site, certificate, ca_file)])
    return f"""# nginx for {site.fqdn}, written by netcheck.lab.nginx (nothing from /etc/nginx).
daemon off;
master_process on;
worker_processes 1;
user {user};
pid {q(folder / 'nginx.pid')};
lock_file {q(folder / 'nginx.lock')};
error_log {q(folder / 'error.log')} info;

events {{
    worker_connections 64;
}}

http {{
    log_format netcheck '{LOG_FORMAT}';
    access_log {q(folder / 'access.log')} netcheck;
{temp}
    types {{
        text/html html;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;
    # Bounded: a lab client that stops reading or sending is dropped, not kept for minutes.
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 10s;
    keepalive_timeout 10s;

    server {{
{server}

        location = /broken {{ return 503; }}
        location = /loop {{ return 302 /loop-again; }}
        location = /loop-again {{ return 302 /loop; }}
        location = /to-https {{ return 301 https://$host/; }}
        location = /big {{ default_type application/octet-stream; }}
        location / {{ index index.html; }}
    }}
}}
"""


def _listens(site: Site) -> list[str]:
    """The site's listen lines: port 80, 443 with TLS, or 443 without it (a misconfiguration)."""
    v4, v6 = site.addresses
    listens = []
    if site.http:
        listens += [f"listen {v4}:80;", f"listen [{v6}]:80;"]
    if site.https:
        listens += [f"listen {v4}:443 ssl;", f"listen [{v6}]:443 ssl;"]
    if site.plain_on_443:
        listens += [f"listen {v4}:443;", f"listen [{v6}]:443;"]
    return listens


def _tls_directives(site: Site, certificate: Optional[Issued], ca_file: Path) -> list[str]:
    """The certificate, the protocols and, when asked for, client certificates."""
    if certificate is None or not site.https:
        return []
    q = _quote
    tls = [f"ssl_certificate {q(certificate.cert)};",
           f"ssl_certificate_key {q(certificate.key)};",
           "ssl_protocols TLSv1.2 TLSv1.3;",
           "ssl_session_cache off;"]
    if site.client_cert_required:
        # nginx asks for a certificate in the handshake and refuses the request (400)
        # when none came: what a campus intranet with mutual TLS does.
        tls += [f"ssl_client_certificate {q(ca_file)};", "ssl_verify_client on;"]
    return tls


def _write_site_files(site: Site, folder: Path) -> None:
    html = folder / "html"
    for path in (folder, html, folder / "tmp"):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)  # workers (nobody) read the document root
    block = (b"netcheck lab /big: a page larger than any path MTU or TCP window. " * 16)[:1024]
    pages = {"index.html": (f"<!DOCTYPE html>\n<html><head><title>{site.fqdn}</title></head>\n"
                            f"<body><p>nginx lab site {site.fqdn}</p></body></html>\n").encode(),
             "big": block * (BIG_SIZE // len(block))}
    for name, content in pages.items():
        with open_for_write(html / name, 0o644) as fh:  # as root: never through a link
            fh.write(content)
        (html / name).chmod(0o644)


# -- starting and waiting ----------------------------------------------------------------------

def _proc_net_address(address: str, port: int) -> str:
    """``address:port`` as /proc/net/tcp{,6} spells it: each 32-bit word of the address read
    in host byte order and printed in hex, then the port in hex."""
    packed = ipaddress.ip_address(address).packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _listening(pid: int, endpoints: list[tuple[str, int]]) -> bool:
    """True when every (address, port) is a listening TCP socket in ``pid``'s namespace.

    /proc/PID/net/tcp is the table of the namespace PID lives in: reading it checks the
    server namespace from here, without running anything inside it.
    """
    listening: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                listening.add(fields[1].upper())
    return all(_proc_net_address(a, p) in listening for a, p in endpoints)


def _started(lab: Lab, label: str, folder: Path) -> str:
    """nginx's own words (its stderr and error log), for a failure message."""
    tail = ""
    try:
        tail = (folder / "error.log").read_text(errors="replace")[-2000:]
    except OSError:
        pass
    return f"{lab.log(label)[-2000:]}{tail}"


def start_nginx(lab: Lab, site: Site) -> NginxSite:
    """Give the server the site's addresses and name, start nginx for it, wait until it listens.

    Idempotent per lab and site: a second call returns the running site (scenarios that share
    a lab all apply the same site). Raises LabError when nginx is missing or does not start.
    """
    started = _SITES.setdefault(lab, {})
    running = started.get(site.name)
    if running is not None:
        if running.site != site:
            raise LabError(f"site {site.name} already runs with another set-up in this lab")
        return running
    if any(s.site.slot == site.slot for s in started.values()):
        raise LabError(f"slot {site.slot} is taken by another nginx site in this lab")
    binary = nginx_binary()
    folder = Path(lab.state_dir) / "nginx" / site.name
    _write_site_files(site, folder)
    ca = nginx_ca(lab)
    certificate = _server_certificate(lab, site) if site.https else None
    config = folder / "nginx.conf"
    with open_for_write(config, 0o644) as fh:
        fh.write(render_config(site, folder, certificate, ca.files.cert,
                               _worker_user(folder)).encode())
    pid_file = folder / "nginx.pid"
    pid_file.unlink(missing_ok=True)

    v4, v6 = site.addresses
    lab.add_server_address(v4)
    lab.add_server_address(v6)
    lab.add_dns_records((f"{site.fqdn}.", "A", [v4]), (f"{site.fqdn}.", "AAAA", [v6]))

    label = f"nginx-{site.name}"
    proc = lab.popen("server", [binary, "-p", f"{folder}/", "-c", str(config)], name=label)
    endpoints = [(a, p) for p in site.ports for a in (v4, v6)]
    deadline = time.monotonic() + READY_TIMEOUT
    # nginx writes its PID file after it has bound and listen()ed every socket; the socket
    # table of its namespace then confirms each address and port.
    while True:
        if proc.poll() is not None:
            raise LabError(f"nginx for {site.fqdn} exited with {proc.returncode}:\n"
                           f"{_started(lab, label, folder)}")
        try:
            written = pid_file.read_text().strip() == str(proc.pid)
        except OSError:
            written = False
        if written and _listening(proc.pid, endpoints):
            break
        if time.monotonic() > deadline:
            raise LabError(f"nginx for {site.fqdn} not listening after {READY_TIMEOUT:g} s:\n"
                           f"{_started(lab, label, folder)}")
        time.sleep(0.005)
    running = NginxSite(site, folder, config, pid_file, folder / "access.log",
                        folder / "error.log", folder / "html", certificate, ca.files.cert,
                        label, proc.pid)
    started[site.name] = running
    return running


def running_sites(lab: Lab) -> dict[str, NginxSite]:
    """The nginx sites started in this lab, by name."""
    return dict(_SITES.get(lab, {}))


def connect_from_server(lab: Lab, address: str, port: int, timeout: float = 2.0) -> bool:
    """A TCP connect to address:port made inside the server namespace (a local handshake,
    as ``nping --tcp-connect`` on the server would do); True if it opened."""
    family = "AF_INET6" if ":" in address else "AF_INET"
    code = (f"import socket; s = socket.socket(socket.{family}); s.settimeout({timeout}); "
            f"s.connect(({address!r}, {int(port)})); s.close()")
    return lab.exec("server", python_argv("-c", code), timeout=timeout + 5).returncode == 0

