"""Reading this host's rules: nft's JSON, iptables-nft-save and the legacy iptables-save.

Reading needs CAP_NET_ADMIN. No command runs through a shell; each has a timeout and a cap on
its output (:func:`run_bounded`, which other probes use for their commands too).
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from typing import Optional

from netcheck.probes.firewall.iptables import parse_iptables_save
from netcheck.probes.firewall.model import Rule, Ruleset
from netcheck.probes.firewall.nft import _iptables_managed, merge_iptables_nft, parse_nft_json

CAP_NET_ADMIN = 12
# Why the rules could not be read: reason codes (the checks put them in words). Any other
# reason is what the tools themselves said (a failed nft, iptables-save).
NEEDS_ROOT = "needs_root"  # no CAP_NET_ADMIN
NO_TOOL = "no_tool"  # neither nft nor iptables-save is installed
NO_TARGET = "no_target"  # nothing to judge the rules for
MAX_OUTPUT_BYTES = 256 << 20  # a ruleset listing larger than this is not read at all
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"


def has_cap_net_admin() -> bool:
    """True when this process may read (and change) netfilter rules."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << CAP_NET_ADMIN))
    except OSError:
        pass
    return os.geteuid() == 0


def _which(name: str) -> Optional[str]:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def run_bounded(argv: list[str], timeout: float,
                max_bytes: int = MAX_OUTPUT_BYTES) -> tuple[int, str, str]:
    """Run argv (never a shell); return (exit status, stdout, stderr).

    The child is killed at ``timeout`` seconds or when stdout passes ``max_bytes``; then the
    exit status is -1 and stderr says why.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    out, err = bytearray(), bytearray()
    why = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"timed out after {timeout:g} s"
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 20)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
            if len(out) > max_bytes:
                why = f"output larger than {max_bytes >> 20} MiB"
                break
    if why:
        proc.kill()
    try:
        rc = proc.wait(timeout=2)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kill that does not take
        rc = -1
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if why:
        return -1, "", why
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _iptables_flavour(name: str) -> Optional[str]:
    """"nft" or "legacy": which backend the command ``name`` (e.g. iptables) drives."""
    path = _which(name)
    if path is None:
        return None
    real = os.path.basename(os.path.realpath(path))
    if "legacy" in real:
        return "legacy"
    if "nft" in real:
        return "nft"
    return None


def read_ruleset(timeout: float = 3.0) -> Ruleset:
    """Read every table this host has, from nft and (where they hold rules) legacy iptables."""
    # The capability test as the package names it: replacing firewall.has_cap_net_admin
    # (a test, a caller) must reach this reading as it did when all was one module.
    from netcheck.probes import firewall

    rs = Ruleset()
    if not firewall.has_cap_net_admin():
        return Ruleset(readable=False, error=NEEDS_ROOT)
    deadline = time.monotonic() + timeout
    nft = _which("nft")
    if nft is not None:
        rc, out, err = run_bounded([nft, "-j", "list", "ruleset"], timeout)
        if rc != 0:
            rs.notes.append(f"nft -j list ruleset failed: {err.strip() or rc}")
        else:
            try:
                parse_nft_json(out, rs)
            except ValueError as exc:
                rs.notes.append(f"nft -j list ruleset gave unreadable JSON: {exc}")
            _resolve_iptables_nft(rs, max(0.5, deadline - time.monotonic()))
    _read_legacy(rs, nft is None, max(0.5, deadline - time.monotonic()))
    if not rs.sources and rs.notes:
        rs.readable, rs.error = False, "; ".join(rs.notes)
    elif not rs.sources:
        rs.readable, rs.error = False, NO_TOOL
    return rs


def _read_legacy(rs: Ruleset, no_nft: bool, timeout: float) -> None:
    """Legacy iptables tables, when the legacy backend holds any (never double-counted)."""
    for fam, names_file, ipt in ((4, "/proc/net/ip_tables_names", "iptables"),
                                 (6, "/proc/net/ip6_tables_names", "ip6tables")):
        save: Optional[str] = None
        command = ipt
        if no_nft and _which(f"{ipt}-save"):
            # No nft: the system's iptables-save is the only window, whatever its backend.
            save = _which(f"{ipt}-save")
            source = "iptables-legacy" if _iptables_flavour(ipt) == "legacy" else "iptables"
        else:
            try:
                with open(names_file) as fh:
                    in_use = fh.read().split()
            except OSError:
                in_use = []  # the legacy module is not even loaded
            if not in_use:
                continue
            source = "iptables-legacy"
            if _iptables_flavour(ipt) == "legacy" and _which(f"{ipt}-save"):
                save = _which(f"{ipt}-save")
            else:
                save = _which(f"{ipt}-legacy-save")
                command = f"{ipt}-legacy"
        if save is None:
            rs.notes.append(f"legacy {ipt} tables exist but {ipt}-legacy-save is missing")
            continue
        rc, out, err = run_bounded([save], timeout)
        if rc != 0:
            rs.notes.append(f"{os.path.basename(save)} failed: {err.strip() or rc}")
            continue
        chains = parse_iptables_save(out, fam, source=source, command=command)
        for chain in chains:
            rs.add_chain(chain)
        if chains:
            rs.sources.append(source if fam == 4 else source.replace("iptables", "ip6tables"))


def _resolve_iptables_nft(rs: Ruleset, timeout: float) -> None:
    """Replace the rules of iptables-nft tables by iptables-nft-save's (complete) reading.

    nft's JSON shows iptables' matches (multiport, conntrack...) and targets (REJECT) as
    opaque ``xt`` blobs; iptables-nft-save prints them in full.
    """
    tables = sorted(t for t in {(c.family, c.table) for c in rs.chains.values()}
                    if _iptables_managed(rs, *t))
    for family, table in tables:
        ipt = "iptables" if family == "ip" else "ip6tables"
        save = _which(f"{ipt}-nft-save")
        command = ipt if _iptables_flavour(ipt) == "nft" else f"{ipt}-nft"
        if save is None:
            rs.notes.append(f"{ipt}-nft-save missing: {family} {table} read from nft's JSON only")
            continue
        rc, out, err = run_bounded([save, "-t", table], timeout)
        if rc != 0 or "incompatible" in out:
            rs.notes.append(f"{ipt}-nft-save -t {table}: {err.strip() or 'incompatible table'}")
            continue
        merge_iptables_nft(rs, family, table, out, command)


def _rule_text_from_nft(rule: Rule, timeout: float) -> Optional[str]:
    """The rule exactly as ``nft -a list chain`` prints it (None: render from the JSON)."""
    nft = _which("nft")
    if nft is None:
        return None
    rc, out, _ = run_bounded([nft, "-a", "list", "chain", rule.family, rule.table, rule.chain],
                             timeout, max_bytes=8 << 20)
    if rc != 0:
        return None
    tag = f"# handle {rule.handle}"
    for line in out.splitlines():
        line = line.strip()
        if line.endswith(tag) and not line.startswith(("chain ", "table ")):
            return line[: -len(tag)].strip()
    return None
