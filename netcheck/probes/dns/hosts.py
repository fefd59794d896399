"""nsswitch.conf's ``hosts:`` line and the hosts file.

The line decides whether DNS is asked at all, and whether before or after the hosts file;
the hosts file is searched in chunks, so a block list of many megabytes costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from netcheck.probes.dns.resolvconf import _read_small, _valid_ip

NSSWITCH = "/etc/nsswitch.conf"


@dataclass
class NssHosts:
    """The ``hosts:`` line of nsswitch.conf: the sources, in order, and their actions."""

    path: str
    sources: list[str] = field(default_factory=lambda: ["files", "dns"])
    # source -> the [STATUS=return] statuses after it, e.g. {"mdns4_minimal": ["NOTFOUND"]}
    returns: dict[str, list[str]] = field(default_factory=dict)
    line: Optional[str] = None  # as written; None when the file or the line is missing
    error: Optional[str] = None

    def asks_dns(self, name: str) -> bool:
        """Does getaddrinfo() ever ask a name server for ``name``?"""
        return self.dns_blocker(name) is None

    def dns_blocker(self, name: str) -> Optional[str]:
        """Why DNS is never asked for ``name`` (the source that stops it), or None."""
        for source in self.sources:
            if source in DNS_SOURCES:
                return None
            # mdns*_minimal answers for .local only, and says NOTFOUND for every .local name
            # it cannot find: with [NOTFOUND=return] those never reach DNS.
            if (source.startswith("mdns") and name.rstrip(".").lower().endswith(".local")
                    and "NOTFOUND" in self.returns.get(source, [])):
                return source
        return "no-dns"

    @property
    def files_first(self) -> bool:
        """The hosts file is read before DNS (the usual ``files dns``)."""
        for source in self.sources:
            if source == "files":
                return True
            if source in DNS_SOURCES:
                return False
        return False

    def to_json(self) -> dict[str, object]:
        return {"file": self.path, "hosts": self.line, "sources": self.sources}


DNS_SOURCES = ("dns", "resolve")  # nss-resolve asks systemd-resolved, which asks DNS


def parse_nsswitch(path: str = NSSWITCH) -> NssHosts:
    """The ``hosts:`` line of nsswitch.conf (glibc's default when there is none)."""
    nss = NssHosts(path=path)
    try:
        text = _read_small(path)
    except OSError as exc:
        # glibc without the file: "hosts: dns [!UNAVAIL=return] files".
        nss.error = exc.strerror or str(exc)
        nss.sources = ["dns", "files"]
        return nss
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words or words[0] != "hosts:":
            continue
        nss.line = " ".join(words[1:])
        nss.sources, nss.returns = [], {}
        for word in words[1:]:
            if word.startswith("[") and nss.sources:
                for action in word.strip("[]").split():
                    status, _, what = action.partition("=")
                    if what.lower() == "return" and not status.startswith("!"):
                        nss.returns.setdefault(nss.sources[-1], []).append(status.upper())
            elif not word.startswith("["):
                nss.sources.append(word)
    return nss


MAX_HOSTS_BYTES = 256 << 20  # block lists reach tens of megabytes; stop well after


def hosts_lookup(path: str, name: str) -> list[str]:
    """Addresses /etc/hosts gives for a name (case-insensitive), in file order.

    Read in chunks and searched with ``str.find``, so a block-list hosts file of many
    megabytes costs milliseconds, not a Python loop over every line.
    """
    wanted = name.lower().rstrip(".")
    found: list[str] = []
    carry = ""
    read = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            while read < MAX_HOSTS_BYTES:
                chunk = fh.read(1 << 20)
                read += len(chunk)
                text = carry + chunk
                cut = text.rfind("\n") if chunk else len(text)
                block, carry = text[:cut + 1], text[cut + 1:]
                low = block.lower()
                pos = low.find(wanted)
                while pos >= 0:
                    start = low.rfind("\n", 0, pos) + 1
                    end = low.find("\n", pos)
                    end = len(low) if end < 0 else end
                    found += _hosts_line(block[start:end], wanted, found)
                    pos = low.find(wanted, end)
                if not chunk:
                    break
    except OSError:
        return []
    return found


def _hosts_line(line: str, wanted: str, found: list[str]) -> list[str]:
    words = line.split("#")[0].split()
    if len(words) >= 2 and wanted in (w.lower().rstrip(".") for w in words[1:]):
        if _valid_ip(words[0]) and words[0] not in found:
            return [words[0]]
    return []
