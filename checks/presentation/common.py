"""What both TLS rungs share: when they apply, the handshakes they judge (one per open
address, shared with the HTTP check), the openssl commands that show what a server presents,
and names read from certificates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck.i18n import _
from netcheck.lazy import asyncio

if TYPE_CHECKING:
    from netcheck.probes.tls import CertSummary, TlsResult
    from netcheck.runner import Context

EXPIRING_DAYS = 14
TLS_SCHEMES = ("https", "pop3s", "imaps")
STARTTLS_SCHEMES = ("smtp", "submission", "imap", "pop3")
MAX_ADDRESSES = 4  # a name with more addresses is a pool: a few tell the story


def _speaks_tls(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    scheme = ctx.target.scheme
    if scheme in TLS_SCHEMES or scheme in STARTTLS_SCHEMES:
        return None
    return _("{scheme}:// does not use TLS").format(scheme=scheme)


def _open_addresses(ctx: Context) -> list[str]:
    """The addresses the transport check connected to (no new TCP probes for the others)."""
    transport = ctx.result("transport.tcp")
    connects = (transport.evidence.get("connects") if transport else None) or []
    return [c["address"] for c in connects
            if isinstance(c, dict) and c.get("state") == "open" and c.get("address")]


async def _handshakes(ctx: Context) -> list[TlsResult]:
    from netcheck.probes import shared, tls

    assert ctx.target is not None
    addresses = _open_addresses(ctx)
    if not addresses:  # the transport check said nothing usable: connect ourselves
        results = await shared.tcp_all(ctx, await ctx.addresses(), ctx.target.port)
        addresses = [r.address for r in results if r.state == "open"]
    addresses = addresses[:MAX_ADDRESSES]
    return list(await asyncio.gather(*(tls.shared_handshake(ctx, a) for a in addresses)))


def _endpoint(r: TlsResult) -> str:
    host = f"[{r.address}]" if ":" in r.address else r.address
    return f"{host}:{r.port}"


def _s_client(r: TlsResult, *extra: str) -> str:
    """The openssl command that shows what this server presents (stdin from /dev/null: it
    prints and ends instead of waiting for the person to type)."""
    parts = ["openssl s_client", "-connect", _endpoint(r)]
    if r.server_name:
        parts += ["-servername", r.server_name]
    if r.starttls:
        parts += ["-starttls", r.starttls]
    return " ".join([*parts, *extra, "</dev/null"])


def _dates(r: TlsResult) -> str:
    """What the slides' ``openssl x509`` shows of the served certificate: notBefore=,
    notAfter=, subject=, issuer= and its names, read straight from the server."""
    return (f"{_s_client(r)} 2>/dev/null | openssl x509 -noout -dates -subject -issuer "
            "-ext subjectAltName")


# Attribute names of ssl's certificate dicts, as RFC 4514 strings write them.
_RDN_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
              "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
              "domainComponent": "DC", "emailAddress": "1.2.840.113549.1.9.1"}


def _dn_parts(dn: str) -> frozenset[tuple[str, str]]:
    """An RFC 4514 name as a set of (attribute, value) pairs (``CN=R3,O=Let's Encrypt``)."""
    import re

    parts = []
    for rdn in re.split(r"(?<!\\)[,+]", dn):
        key, sep, value = rdn.partition("=")
        if sep:
            parts.append((key.strip(), value.strip().replace("\\", "")))
    return frozenset(parts)


def _system_store() -> frozenset[frozenset[tuple[str, str]]]:
    """The subjects of the CAs this host trusts system-wide (not --cafile)."""
    import ssl

    try:
        cas = ssl.create_default_context().get_ca_certs()
    except (ssl.SSLError, OSError):
        return frozenset()
    return frozenset(frozenset((_RDN_SHORT.get(k, k), v) for rdn in ca.get("subject", ())
                               for k, v in rdn) for ca in cas)


def issuer_is_public(chain: list[CertSummary], store: frozenset[frozenset[tuple[str, str]]]
                     ) -> bool:
    """Whether a CA of this host's system trust store issued the chain: a public CA (or one
    the organisation installed system-wide), not a private CA the server's owner runs."""
    return any(_dn_parts(c.issuer) in store for c in chain)


def _acme(chain: list[CertSummary]) -> bool:
    """Issued by Let's Encrypt (renewed with certbot)."""
    return any("Let's Encrypt" in c.issuer or "ISRG" in c.issuer for c in chain)


def _host_of(ctx: Context) -> str:
    assert ctx.target is not None
    return ctx.target.host


def short_name(dn: str) -> str:
    """The common name of an RFC 4514 name (``CN=www,O=x`` -> ``www``), else the whole name."""
    import re

    found = re.search(r"(?:^|,)CN=((?:\\.|[^,\\])*)", dn)
    return found.group(1).replace("\\", "") if found and found.group(1) else dn


def _secs(value: Optional[float]) -> str:
    return f"{value:g} s" if value is not None else _("the timeout")
