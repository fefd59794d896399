"""Captive portals: is plain HTTP intercepted and sent to a sign-in page?

What ChromeOS and NetworkManager do, with what a diagnosis has at hand:

- a **connectivity-check URL** whose answer is known: NetworkManager's own (``[connectivity]
  uri=`` and ``response=`` in NetworkManager.conf or its conf.d snippets), else the one given
  with ``--portal-url``. A redirect, RFC 6585's ``511 Network Authentication Required``, or
  (for NetworkManager's URL) a body other than the one configured means interception;
- the **target's own host** over plain HTTP (port 80): a 511, or a redirect to another host
  while the target's TLS is reset or answered with a certificate for another name, or while
  the target's name resolves to the very address the redirect leads to (DNS rewritten).

Facts only here (:class:`Probe`, :class:`PortalFacts`); :func:`judge` turns them into the
finding, one row per way a portal shows itself (table-driven, see tests/unit/test_portal.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

NM_MAIN = "etc/NetworkManager/NetworkManager.conf"
# NetworkManager reads its main file, then the snippets of these folders by file name (a
# name in /etc hides the same name elsewhere); a later key overrides an earlier one.
NM_SNIPPETS = ("usr/lib/NetworkManager/conf.d", "run/NetworkManager/conf.d",
               "etc/NetworkManager/conf.d")
NM_DEFAULT_RESPONSE = "NetworkManager is online"
NETWORK_AUTH_REQUIRED = 511  # RFC 6585: the status a well-behaved portal answers with
REDIRECTS = (301, 302, 303, 307, 308)
MAX_CONF_BYTES = 64 * 1024
BODY_START = 120  # characters of a body kept to compare with the expected answer


@dataclass(frozen=True)
class CheckUrl:
    """A connectivity-check URL and what a network without a portal answers there.

    ``response``: the start of the body expected with a 200 (an empty string: a 204 is
    expected); None: not known (``--portal-url``), then only a redirect or a 511 tells.
    """

    url: str
    source: str  # "--portal-url" or the file that configured it
    response: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "source": self.source, "response": self.response}


def _read_ini(path: str) -> dict[str, dict[str, str]]:
    """A keyfile's sections (NetworkManager's format: INI, ``#`` and ``;`` comments)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(MAX_CONF_BYTES)
    except OSError:
        return {}
    sections: dict[str, dict[str, str]] = {}
    current: Optional[dict[str, str]] = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip().lower()] = value.strip()
    return sections


def network_manager_files(sysroot: str = "/") -> list[str]:
    """NetworkManager's configuration files in the order it reads them."""
    files = [os.path.join(sysroot, NM_MAIN)]
    snippets: dict[str, str] = {}
    for folder in NM_SNIPPETS:
        try:
            names = os.listdir(os.path.join(sysroot, folder))
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf"):
                snippets[name] = os.path.join(sysroot, folder, name)  # later folders win
    return files + [snippets[name] for name in sorted(snippets)]


def network_manager_check(sysroot: str = "/") -> Optional[CheckUrl]:
    """NetworkManager's connectivity-check URL, or None when none is configured (or it is
    turned off: ``enabled=false`` or ``interval=0``)."""
    merged: dict[str, str] = {}
    source: dict[str, str] = {}
    for path in network_manager_files(sysroot):
        for key, value in _read_ini(path).get("connectivity", {}).items():
            merged[key] = value
            source[key] = path
    uri = merged.get("uri", "")
    if not uri or merged.get("enabled", "true").lower() in ("false", "no", "0", "off") \
            or merged.get("interval", "").strip() == "0":
        return None
    where = "/" + os.path.relpath(source["uri"], sysroot)  # as the host names it
    return CheckUrl(uri, where, merged.get("response", NM_DEFAULT_RESPONSE))


def check_url(portal_url: Optional[str], sysroot: str = "/") -> Optional[CheckUrl]:
    """The URL to test the network with: NetworkManager's own, else ``--portal-url``."""
    configured = network_manager_check(sysroot)
    if configured is not None:
        return configured
    return CheckUrl(portal_url, "--portal-url") if portal_url else None


@dataclass
class Probe:
    """One plain-HTTP request, not followed: what came back."""

    url: str
    outcome: str  # netcheck.probes.http's outcome ("too_many_redirects": a redirect)
    status: Optional[int] = None
    location: Optional[str] = None  # where a redirect points (printable, password masked)
    location_host: Optional[str] = None
    address: Optional[str] = None
    body_start: str = ""  # the first printable characters of the body
    detail: Optional[str] = None

    @property
    def redirected(self) -> bool:
        return self.status in REDIRECTS and self.location is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "outcome": self.outcome}
        for key in ("status", "location", "address", "detail"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.body_start:
            out["body_start"] = self.body_start
        return out


def probe_of(url: str, result: Any) -> Probe:
    """A :class:`Probe` from :func:`netcheck.probes.http.fetch`'s result (no redirect followed)."""
    from netcheck.probes.http import UrlError, split_url
    from netcheck.redact import shown

    hop = result.hops[0] if result.hops else None
    probe = Probe(url, result.outcome, detail=result.detail if result.outcome not in (
        "ok", "too_many_redirects") else None)
    if hop is None:
        return probe
    probe.status, probe.address = hop.status, hop.address
    probe.body_start = shown(hop.sample.decode("latin-1"), BODY_START) if hop.sample else ""
    if hop.next_url:
        probe.location = hop.next_url
        try:
            probe.location_host = split_url(hop.next_url).host
        except UrlError:
            probe.location_host = None
    return probe


@dataclass
class PortalFacts:
    """What the portal judgement rests on.

    ``target_tls``: how the target's own TLS port fared, for https targets (or port 443
    probed because port 80 redirected elsewhere): "ok" (verified), "reset" (RST to the SYN
    or right after it), "silent" (no answer), "other_name" (a certificate for another name),
    "untrusted" (names the host, does not verify), "failed"; None: not looked at.
    """

    host: str
    check: Optional[CheckUrl] = None
    check_probe: Optional[Probe] = None
    target_probe: Optional[Probe] = None
    target_tls: Optional[str] = None
    target_addresses: list[str] = field(default_factory=list)
    portal_addresses: list[str] = field(default_factory=list)  # the redirect's host resolved

    @property
    def dns_rewritten(self) -> bool:
        """The target's name resolves to the address the sign-in redirect leads to."""
        return bool(set(self.target_addresses) & set(self.portal_addresses))


@dataclass(frozen=True)
class Finding:
    """A portal found: how it showed (``how``: a key of the check's texts) and its URL."""

    how: str
    portal_url: str


def _same_site(a: str, b: Optional[str]) -> bool:
    return b is not None and a.lower().rstrip(".") == b.lower().rstrip(".")


def _check_intercepted(check: CheckUrl, probe: Probe) -> Optional[Finding]:
    if probe.status == NETWORK_AUTH_REQUIRED:
        return Finding("check_511", probe.location or check.url)
    if probe.redirected:
        return Finding("check_redirect", probe.location or check.url)
    if check.response is None or probe.status is None or probe.outcome != "ok":
        return None
    if check.response == "":
        expected_ok = probe.status == 204
    else:  # NetworkManager compares the start of the body
        expected_ok = probe.status == 200 and probe.body_start.startswith(
            check.response[:BODY_START])
    return None if expected_ok else Finding("check_content", check.url)


def judge(facts: PortalFacts) -> Optional[Finding]:
    """The portal, when the facts show one; None when they do not.

    In order: the connectivity check answered otherwise than a free network answers it;
    the target's host answers 511; it redirects to another host whose address the target's
    name also resolves to (DNS rewritten); it redirects to another host while the target's
    TLS is reset, silent, or answered with a certificate for another name. A redirect to
    another host alone, or with a certificate that names the host but does not verify (a
    private CA), is a web site's business, not a portal's.
    """
    if facts.check is not None and facts.check_probe is not None:
        found = _check_intercepted(facts.check, facts.check_probe)
        if found is not None:
            return found
    probe = facts.target_probe
    if probe is None:
        return None
    if probe.status == NETWORK_AUTH_REQUIRED:
        return Finding("target_511", probe.location or probe.url)
    if not probe.redirected or _same_site(facts.host, probe.location_host):
        return None
    assert probe.location is not None
    if facts.dns_rewritten:
        return Finding("dns_rewritten", probe.location)
    if facts.target_tls in ("reset", "silent", "other_name"):
        return Finding(f"tls_{facts.target_tls}", probe.location)
    return None
