"""This host's own firewall: read the rules, and say what they do to one flow.

The rules come from ``nft -j list ruleset`` (JSON: every table, chain, set and rule with its
handle), from ``iptables-nft-save`` for the tables iptables manages through nf_tables (their
matches are opaque ``xt`` blobs in nft's JSON), and from ``iptables-legacy-save`` /
``ip6tables-legacy-save`` when the legacy backend holds tables. Reading needs CAP_NET_ADMIN.
No command runs through a shell; each has a timeout and a cap on its output.

:func:`evaluate` walks the base chains of one hook (output, forward, input) in priority
order for one flow, the way netfilter would: rules in order, jump/goto into regular chains,
return, the chain policy at the end. It understands the common expressions (addresses with
prefixes and sets, l4proto, ports with ranges and sets, interface names, conntrack state —
the flow is NEW, so ``ct state established,related accept`` does not match it — marks, vmaps)
and nothing else: an expression it does not understand is never guessed. The rule is
skipped, and the verdict says it is *uncertain* and which expression was not understood.
The work is capped (rules visited, jump depth, time), and a capped walk says so.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import json
import os
import selectors
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

if TYPE_CHECKING:
    from netcheck.runner import Context

CAP_NET_ADMIN = 12
NEEDS_ROOT = "needs root (CAP_NET_ADMIN) to read the firewall rules"
MAX_OUTPUT_BYTES = 256 << 20  # a ruleset listing larger than this is not read at all
MAX_STEPS = 50_000  # rules (and anonymous-set elements) visited per flow
MAX_DEPTH = 16  # nested jumps, as the kernel's own jump stack
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"

# What iptables' built-in chains hook into, and at which nf_tables priority.
IPT_TABLE_PRIO = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
IPT_HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward",
             "OUTPUT": "output", "POSTROUTING": "postrouting"}
IPT_NAT_PRIO = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132,
                 "dccp": 33, "udplite": 136, "gre": 47, "esp": 50, "ah": 51, "igmp": 2,
                 "comp": 108, "ipip": 4, "ipv6": 41}
ICMP_TYPE_NUMBERS = {("icmp", "echo-request"): 8, ("icmp", "echo-reply"): 0,
                     ("icmpv6", "echo-request"): 128, ("icmpv6", "echo-reply"): 129,
                     ("icmpv6", "nd-neighbor-advert"): 136}
VERDICTS = ("accept", "drop", "reject", "return", "continue", "jump", "goto", "queue")
NAT_STATEMENTS = ("snat", "dnat", "masquerade", "redirect")
# Statements that neither match nor decide: they only count, log or tag the packet.
PASSIVE_STATEMENTS = ("counter", "log", "notrack", "ct helper", "ct timeout", "ct expectation",
                      "set", "flow", "dup", "mangle", "synproxy", "tproxy", "secmark",
                      "ct count", "last", "meter")
# meta keys nft prints without the word "meta" (nft's meta_key_is_unqualified()).
BARE_META = ("iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup")
IFNAME_KEYS = ("iifname", "oifname", "iif", "oif", "ibrname", "obrname")
BLOCKING = ("drop", "reject")


# -- model ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flow:
    """One flow to judge: what a connect() or an echo request from this host would send."""

    family: int  # 4 or 6
    protocol: str  # tcp | udp | icmp
    daddr: str
    # A reply's destination port is the probe's own: somewhere in the ephemeral range.
    dport: Union[int, tuple[int, int], None] = None
    saddr: Optional[str] = None  # unknown (None) makes rules on the source uncertain
    # An unbound client socket gets a port from ip_local_port_range: rules on the source
    # port match, do not match, or cannot be told, depending on how they cut that range.
    sport: Union[int, tuple[int, int], None] = (32768, 60999)
    oifname: Optional[str] = None
    iifname: Optional[str] = None
    hook: str = "output"
    # A reply coming back to this host (input hook): conntrack has seen the request, so it
    # is ``ct state established``, ``ct direction reply``, a SYN-ACK or an echo reply.
    reply: bool = False
    # Set for what is neither a request nor its reply: a neighbour advertisement is not
    # tracked by conntrack (ct state untracked) and is no echo.
    icmp_type: Optional[str] = None
    ct_state: Optional[str] = None
    # Is the destination one of this host's addresses (``fib daddr type local``, iptables'
    # ``-m addrtype --dst-type LOCAL``, how Docker's nat chains pick its traffic)? None: unknown.
    local_daddr: Optional[bool] = None

    def describe(self) -> str:
        fam = "IPv6" if self.family == 6 else "IPv4"
        if self.icmp_type is not None:
            return f"{fam} {self.icmp_type} from {self.saddr}"
        if self.reply:
            if self.protocol == "icmp":
                return f"{fam} ping reply from {self.saddr}"
            return f"{self.protocol} reply from {self.saddr} port {self.sport}"
        if self.protocol == "icmp":
            return f"{fam} ping to {self.daddr}"
        return f"{self.protocol} port {self.dport} to {self.daddr}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "protocol": self.protocol,
                               "daddr": self.daddr, "hook": self.hook}
        for key in ("dport", "saddr", "oifname", "iifname"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.reply:
            out["reply"] = True
            out["sport"] = self.sport
        return out


@dataclass
class Rule:
    """One rule, whichever tool made it; ``exprs`` is in nft's JSON form either way."""

    family: str
    table: str
    chain: str
    exprs: list[Any]
    handle: Optional[int] = None
    position: int = 0  # 1-based place in its chain (iptables' rule number)
    text: Optional[str] = None  # as its own tool lists it (nft syntax, or an -A line)
    spec: Optional[str] = None  # iptables: the rule after "-A CHAIN", for "-D CHAIN spec"
    source: str = "nft"  # nft | iptables-nft | iptables-legacy | iptables
    command: str = "nft"  # the command that edits it (nft, iptables, ip6tables-legacy...)

    @property
    def quoted(self) -> str:
        return self.text if self.text is not None else render_rule(self.exprs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "table": self.table, "chain": self.chain,
                               "rule": self.quoted, "source": self.source}
        if self.handle is not None:
            out["handle"] = self.handle
        if self.source.startswith("iptables"):
            out["position"] = self.position
        return out


@dataclass
class Chain:
    """A chain; a base chain has a hook, a priority and a policy."""

    family: str
    table: str
    name: str
    hook: Optional[str] = None
    prio: int = 0
    policy: Optional[str] = None
    type: Optional[str] = None
    handle: Optional[int] = None
    source: str = "nft"
    command: str = "nft"
    rules: list[Rule] = field(default_factory=list)
    order: int = 0  # place in the listing: ties of priority keep the listing's order

    @property
    def base(self) -> bool:
        return self.hook is not None

    @property
    def label(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass
class NamedSet:
    """A named set or map with its elements (maps: ``[key, value]`` pairs)."""

    family: str
    table: str
    name: str
    elements: list[Any]
    is_map: bool = False
    _index: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ruleset:
    """Everything read from this host's firewall tools."""

    chains: dict[tuple[str, str, str], Chain] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], NamedSet] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # "nft 1.0.6", "iptables-legacy"...
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    readable: bool = True
    error: Optional[str] = None

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())

    def add_chain(self, chain: Chain) -> Chain:
        key = (chain.family, chain.table, chain.name)
        chain.order = len(self.chains)
        self.chains[key] = chain
        return chain

    def base_chains(self, hook: str, family: int) -> list[Chain]:
        """Base chains of a hook that see this address family, in the order netfilter runs them."""
        fams = ("inet", "ip") if family == 4 else ("inet", "ip6")
        found = [c for c in self.chains.values() if c.hook == hook and c.family in fams]
        return sorted(found, key=lambda c: (c.prio, c.order))

    def summary(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "tables": len({(c.family, c.table)
                                                             for c in self.chains.values()}),
                "chains": len(self.chains), "rules": self.rule_count, "notes": list(self.notes)}


@dataclass
class Verdict:
    """What the rules do to one flow."""

    flow: Flow
    action: str  # drop | reject | accept | no rule matches | unknown
    rule: Optional[Rule] = None  # the rule that decided (None: a policy, or nothing)
    chain: Optional[Chain] = None  # the chain holding that rule, or whose policy decided
    by_policy: bool = False
    uncertain: list[str] = field(default_factory=list)  # why the verdict may be wrong
    capped: bool = False
    steps: int = 0
    walked: list[str] = field(default_factory=list)  # base chains seen, in order

    @property
    def blocked(self) -> bool:
        return self.action in BLOCKING

    @property
    def certain(self) -> bool:
        return not self.uncertain and not self.capped and self.action != "unknown"

    def describe(self) -> str:
        """One line: what blocks the flow (or lets it through), quoting the rule."""
        if self.rule is not None:
            where = f"{self.rule.family} {self.rule.table} {self.rule.chain}"
            tag = f" (handle {self.rule.handle})" if self.rule.handle is not None else ""
            return f"{where}: `{self.rule.quoted}`{tag}"
        if self.by_policy and self.chain is not None:
            return f"{self.chain.label}: policy {self.chain.policy}"
        return self.action

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flow": self.flow.describe(), "verdict": self.action,
                               "certain": self.certain}
        if self.rule is not None:
            out["rule"] = self.rule.to_json()
        if self.by_policy and self.chain is not None:
            out["policy"] = {"chain": self.chain.label, "policy": self.chain.policy}
        if self.uncertain:
            out["uncertain"] = list(self.uncertain)
        if self.capped:
            out["capped"] = f"stopped after {self.steps} rules: the ruleset is too large to " \
                            "evaluate completely"
        if self.walked:
            out["chains"] = list(self.walked)
        return out


# -- reading -------------------------------------------------------------------------------

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
    rs = Ruleset()
    if not has_cap_net_admin():
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
        rs.readable, rs.error = False, "neither nft nor iptables-save is installed"
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


# -- nft JSON --------------------------------------------------------------------------------

def parse_nft_json(text: str, rs: Optional[Ruleset] = None) -> Ruleset:
    """Chains, rules and sets from ``nft -j list ruleset`` output."""
    # A big ruleset is millions of small objects: the cyclic collector would rescan them
    # over and over while they are built (five times slower for 100 000 rules).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_nft_json(text, rs if rs is not None else Ruleset())
    finally:
        if was_enabled:
            gc.enable()


def _parse_nft_json(text: str, rs: Ruleset) -> Ruleset:
    doc = json.loads(text) if text.strip() else {"nftables": []}
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    version = "nft"
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (kind, body), = item.items()
        if not isinstance(body, dict):
            continue
        if kind == "metainfo":
            version = f"nft {body.get('version', '')}".strip()
        elif kind == "chain":
            key = (body.get("family", ""), body.get("table", ""), body.get("name", ""))
            chain = rs.chains.get(key) or rs.add_chain(Chain(*key))
            chain.hook = body.get("hook")
            chain.prio = _int(body.get("prio", 0))
            chain.policy = body.get("policy", "accept" if chain.hook else None)
            chain.type = body.get("type")
            chain.handle = body.get("handle")
        elif kind == "rule":
            key = (body.get("family", ""), body.get("table", ""), body.get("chain", ""))
            chain = rs.chains.get(key) or rs.add_chain(Chain(*key))
            exprs = body.get("expr") or []
            chain.rules.append(Rule(key[0], key[1], key[2],
                                    exprs if isinstance(exprs, list) else [],
                                    handle=body.get("handle"), position=len(chain.rules) + 1))
        elif kind in ("set", "map"):
            key = (body.get("family", ""), body.get("table", ""), body.get("name", ""))
            elems = body.get("elem") or []
            rs.sets[key] = NamedSet(*key, elements=elems if isinstance(elems, list) else [],
                                    is_map=kind == "map")
    rs.sources.append(version)
    return rs


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _iptables_managed(rs: Ruleset, family: str, table: str) -> bool:
    """A table that iptables-nft made: ``xt`` blobs in its rules, or iptables' chain names."""
    if family not in ("ip", "ip6") or table not in IPT_TABLE_PRIO:
        return False
    chains = [c for c in rs.chains.values() if (c.family, c.table) == (family, table)]
    if any(c.base and c.name in IPT_HOOKS for c in chains):
        return True
    return any("xt" in e for c in chains for r in c.rules for e in r.exprs if isinstance(e, dict))


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


def merge_iptables_nft(rs: Ruleset, family: str, table: str, save_text: str,
                       command: str) -> None:
    """Take one iptables-nft table's rules from its iptables-save listing.

    Rules correspond one to one, in order, to nft's listing of the same chain, so each
    keeps its nft handle (for ``nft delete rule ... handle N``) next to its -A line.
    """
    for parsed in parse_iptables_save(save_text, 4 if family == "ip" else 6,
                                      source="iptables-nft", command=command):
        if parsed.table != table:
            continue
        current = rs.chains.get((family, table, parsed.name))
        if current is None:
            continue
        handles = [r.handle for r in current.rules]
        if len(handles) == len(parsed.rules):
            for rule, handle in zip(parsed.rules, handles):
                rule.handle = handle
        current.rules = parsed.rules
        current.source, current.command = "iptables-nft", command
    label = f"{'iptables' if family == 'ip' else 'ip6tables'}-nft"
    if label not in rs.sources:
        rs.sources.append(label)


# -- iptables-save ---------------------------------------------------------------------------

REJECT_WITH = {
    "icmp-net-unreachable": ("icmp", "net-unreachable"),
    "icmp-host-unreachable": ("icmp", "host-unreachable"),
    "icmp-port-unreachable": ("icmp", "port-unreachable"),
    "icmp-proto-unreachable": ("icmp", "prot-unreachable"),
    "icmp-net-prohibited": ("icmp", "net-prohibited"),
    "icmp-host-prohibited": ("icmp", "host-prohibited"),
    "icmp-admin-prohibited": ("icmp", "admin-prohibited"),
    "icmp6-no-route": ("icmpv6", "no-route"),
    "icmp6-adm-prohibited": ("icmpv6", "admin-prohibited"),
    "icmp6-addr-unreachable": ("icmpv6", "addr-unreachable"),
    "icmp6-port-unreachable": ("icmpv6", "port-unreachable"),
    "tcp-reset": ("tcp reset", None),
}
PASSIVE_TARGETS = ("LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "TCPMSS", "CT", "NOTRACK",
                   "TRACE", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "SECMARK", "CONNSECMARK",
                   "AUDIT", "CHECKSUM", "SET", "IDLETIMER", "LED")
NAT_TARGETS = ("MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP")


def parse_iptables_save(text: str, family: int, source: str = "iptables-legacy",
                        command: Optional[str] = None) -> list[Chain]:
    """Chains and rules from ``iptables-save`` (or ``ip6tables-save``) output.

    Each rule is translated into nft's JSON expressions so one evaluator judges both;
    options it does not know become an ``xt`` match, which the evaluator never guesses.
    """
    fam = "ip" if family == 4 else "ip6"
    cmd = command or ("iptables" if family == 4 else "ip6tables")
    chains: dict[tuple[str, str], Chain] = {}
    order: list[Chain] = []
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            parts = line[1:].split()
            if not parts:
                continue
            name = parts[0]
            policy = parts[1].lower() if len(parts) > 1 and parts[1] != "-" else None
            hook = IPT_HOOKS.get(name) if policy else None
            prio = IPT_NAT_PRIO.get(name, 0) if table == "nat" else IPT_TABLE_PRIO.get(table, 0)
            chain = Chain(fam, table, name, hook=hook, prio=prio, policy=policy, type=table,
                          source=source, command=cmd)
            chains[(table, name)] = chain
            order.append(chain)
        elif line.startswith("-A ") and table:
            try:
                tokens = shlex.split(line)
            except ValueError:
                tokens = line.split()
            if len(tokens) < 2:
                continue
            chain = chains.get((table, tokens[1]))
            if chain is None:  # a rule for a chain never declared: keep it anyway
                chain = Chain(fam, table, tokens[1], source=source, command=cmd)
                chains[(table, tokens[1])] = chain
                order.append(chain)
            exprs = _iptables_exprs(tokens[2:], fam, {n for (t, n) in chains if t == table})
            spec = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
            chain.rules.append(Rule(fam, table, chain.name, exprs, position=len(chain.rules) + 1,
                                    text=line, spec=spec, source=source, command=cmd))
    return order


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, fieldname: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": fieldname}}


def _ipt_addr(value: str) -> Any:
    if "/" in value:
        addr, _, length = value.partition("/")
        try:
            bits = int(length)
        except ValueError:  # an old-style dotted mask
            bits = ipaddress.ip_network(f"0.0.0.0/{length}").prefixlen
        net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        if net.prefixlen == net.max_prefixlen:
            return str(net.network_address)
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return value


def _ipt_port(value: str) -> Any:
    if ":" in value:
        lo, _, hi = value.partition(":")
        return {"range": [_port_value(lo or "0"), _port_value(hi or "65535")]}
    return _port_value(value)


def _port_value(value: str) -> Any:
    return int(value) if value.isdigit() else value


def _iptables_exprs(tokens: list[str], fam: str, chain_names: set[str]) -> list[Any]:
    """One iptables rule (the tokens after ``-A CHAIN``) as nft JSON expressions."""
    exprs: list[Any] = []
    proto: Optional[str] = None
    module = ""
    negate = False
    i = 0

    def arg() -> str:
        nonlocal i
        i += 1
        return tokens[i] if i < len(tokens) else ""

    while i < len(tokens):
        tok = tokens[i]
        op = "!=" if negate else "=="
        if tok == "!":
            negate = True
            i += 1
            continue
        negate = False
        if tok in ("-s", "--source", "-d", "--destination"):
            field_ = "saddr" if tok in ("-s", "--source") else "daddr"
            exprs.append(_match(_payload(fam, field_), _ipt_addr(arg()), op))
        elif tok in ("-p", "--protocol"):
            proto = arg().lower()
            if proto not in ("all", "0"):
                exprs.append(_match({"meta": {"key": "l4proto"}},
                                    "ipv6-icmp" if proto in ("icmpv6", "ipv6-icmp") else proto,
                                    op))
        elif tok in ("-i", "--in-interface", "-o", "--out-interface"):
            key = "iifname" if tok in ("-i", "--in-interface") else "oifname"
            name = arg()
            name = name[:-1] + "*" if name.endswith("+") else name
            exprs.append(_match({"meta": {"key": key}}, name, op))
        elif tok in ("-m", "--match"):
            module = arg()
        elif tok in ("--dport", "--destination-port", "--sport", "--source-port"):
            field_ = "dport" if tok in ("--dport", "--destination-port") else "sport"
            exprs.append(_match(_payload(proto or module or "th", field_), _ipt_port(arg()), op))
        elif tok in ("--dports", "--destination-ports", "--sports", "--source-ports", "--ports"):
            values = {"set": [_ipt_port(p) for p in arg().split(",") if p]}
            if tok == "--ports":  # either port: not expressible as one match
                exprs.append({"xt": {"type": "match", "name": "multiport --ports"}})
            else:
                field_ = "dport" if "d" in tok[2:4] else "sport"
                exprs.append(_match(_payload(proto or "th", field_), values, op))
        elif tok in ("--ctstate", "--state"):
            states = [s.lower() for s in arg().split(",") if s]
            exprs.append(_match({"ct": {"key": "state"}}, states, "!=" if op == "!=" else "in"))
        elif tok in ("--icmp-type", "--icmpv6-type"):
            kind = "icmp" if tok == "--icmp-type" else "icmpv6"
            value = arg()
            value = int(value.split("/")[0]) if value.split("/")[0].isdigit() else value
            exprs.append(_match(_payload(kind, "type"), value, op))
        elif tok in ("--dst-range", "--src-range"):
            lo, _, hi = arg().partition("-")
            field_ = "daddr" if tok == "--dst-range" else "saddr"
            exprs.append(_match(_payload(fam, field_), {"range": [lo, hi or lo]}, op))
        elif tok == "--comment":
            exprs.append({"comment": arg()})
        elif tok == "--dst-type" and module == "addrtype":
            kinds = [k.lower() for k in arg().split(",") if k]
            exprs.append(_match({"fib": {"result": "type", "flags": ["daddr"]}},
                                kinds[0] if len(kinds) == 1 else {"set": kinds}, op))
        elif tok in ("--limit", "--limit-burst"):
            arg()
            if tok == "--limit":
                exprs.append({"limit": {"rate": 0, "per": "", "inv": False}})
        elif tok in ("-j", "--jump", "-g", "--goto"):
            target = arg()
            rest = tokens[i + 1:]
            exprs.extend(_iptables_target(target, rest, tok in ("-g", "--goto"), chain_names))
            break
        else:
            # An option of a match netcheck does not know: keep it, never guess it.
            name = f"{module} {tok}".strip()
            while i + 1 < len(tokens) and not tokens[i + 1].startswith("-") \
                    and tokens[i + 1] != "!":
                i += 1
                name += f" {tokens[i]}"
            exprs.append({"xt": {"type": "match", "name": name}})
        i += 1
    return exprs


def _iptables_target(target: str, rest: list[str], goto: bool,
                     chain_names: set[str]) -> list[Any]:
    if target == "ACCEPT":
        return [{"accept": None}]
    if target == "DROP":
        return [{"drop": None}]
    if target == "RETURN":
        return [{"return": None}]
    if target == "REJECT":
        how = "icmp-port-unreachable"
        if "--reject-with" in rest and rest.index("--reject-with") + 1 < len(rest):
            how = rest[rest.index("--reject-with") + 1]
        kind, expr = REJECT_WITH.get(how, ("icmpx", how))
        body: dict[str, Any] = {"type": kind}
        if expr:
            body["expr"] = expr
        return [{"reject": body}]
    if target in PASSIVE_TARGETS:
        return [{"log": {"target": target}}]
    if target == "DNAT" and "--to-destination" in rest[:-1]:
        # Where Docker sends a published port: --to-destination ADDR[:PORT] (IPv6 in [])
        to = rest[rest.index("--to-destination") + 1]
        addr, port = to, None
        if to.startswith("["):
            addr, _, tail = to[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else None
        elif to.count(":") == 1:
            addr, port = to.split(":")
        body: dict[str, Any] = {"addr": addr}
        if port and port.isdigit():
            body["port"] = int(port)
        return [{"dnat": body}]
    if target in NAT_TARGETS:
        return [{target.lower() if target != "NETMAP" else "snat": {}}]
    if target in chain_names:
        return [{"goto" if goto else "jump": {"target": target}}]
    return [{"xt": {"type": "target", "name": target}}]


# -- evaluation ------------------------------------------------------------------------------

class _Unknown:
    """A value the flow does not determine (the reason says which expression)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_NA = object()  # the expression cannot apply to this flow (ip daddr on an IPv6 packet)


@dataclass
class _Walk:
    flow: Flow
    rs: Ruleset
    max_steps: int
    deadline: float
    steps: int = 0
    capped: bool = False
    mark: int = 0
    uncertain: list[str] = field(default_factory=list)
    # kinds of verdict a skipped (not understood) rule could have given
    maybe: set[str] = field(default_factory=set)


def evaluate(rs: Ruleset, flow: Flow, max_steps: int = MAX_STEPS,
             time_budget: float = 2.0) -> Verdict:
    """What the base chains of ``flow.hook`` do to the flow (see the module docstring)."""
    walk = _Walk(flow, rs, max_steps, time.monotonic() + time_budget)
    verdict = Verdict(flow, "no rule matches")
    matched_any = False
    for chain in rs.base_chains(flow.hook, flow.family):
        verdict.walked.append(chain.label)
        outcome, rule, where = _run_chain(walk, chain, 0)
        if outcome == "capped":
            verdict.action = "unknown"
            break
        if outcome in ("end", "return"):  # fell off the end of the base chain: its policy
            policy = chain.policy or "accept"
            if policy in BLOCKING:
                verdict.action, verdict.chain, verdict.by_policy = policy, chain, True
                break
            continue
        matched_any = True
        if outcome in BLOCKING or outcome in ("unknown", "queue"):
            verdict.action, verdict.rule, verdict.chain = (
                outcome if outcome != "queue" else "unknown"), rule, where
            break
        # accept: this base chain lets it through; the next base chain still judges it
        verdict.action, verdict.rule, verdict.chain = "accept", rule, where
    if verdict.action == "accept" and not matched_any:
        verdict.action = "no rule matches"
    verdict.steps, verdict.capped = walk.steps, walk.capped
    # A rule skipped because it was not understood matters only if it could have decided
    # otherwise: an accept (or a jump) before a drop, a drop before an accept.
    relevant = walk.maybe & ({"accept", "jump", "goto", "return", "unknown"} if verdict.blocked
                             else {"drop", "reject", "jump", "goto", "unknown"})
    if relevant or verdict.action == "unknown":
        verdict.uncertain = walk.uncertain
    return verdict


def _run_chain(walk: _Walk, chain: Chain, depth: int) -> tuple[str, Optional[Rule], Chain]:
    """Run one chain; outcome is accept|drop|reject|return|end|unknown|queue|capped."""
    if depth > MAX_DEPTH:
        walk.uncertain.append(f"jumps nested deeper than {MAX_DEPTH} at {chain.label} (a loop?)")
        return "unknown", None, chain
    for rule in chain.rules:
        walk.steps += 1
        if walk.steps > walk.max_steps or (walk.steps % 1024 == 0
                                           and time.monotonic() > walk.deadline):
            walk.capped = True
            return "capped", None, chain
        matched, verdict, target, unknown = _run_rule(walk, rule)
        if matched is False:
            continue
        if matched is None:
            if verdict is not None:
                walk.maybe.add(verdict)
                walk.uncertain.append(
                    f"{chain.label} rule `{rule.quoted}`"
                    + (f" (handle {rule.handle})" if rule.handle is not None else "")
                    + f" would {verdict}{' ' + target if target else ''} but {unknown} "
                    "is not understood: skipped")
            continue
        if verdict is None or verdict == "continue":
            continue
        if verdict in ("accept", "drop", "reject", "unknown", "queue"):
            if verdict == "unknown":
                walk.uncertain.append(f"{chain.label} rule `{rule.quoted}`: {unknown}")
            return verdict, rule, chain
        if verdict == "return":
            return "return", rule, chain
        sub = walk.rs.chains.get((chain.family, chain.table, target or ""))
        if sub is None:
            walk.uncertain.append(f"{chain.label}: {verdict} to missing chain {target}")
            continue
        outcome, hit, where = _run_chain(walk, sub, depth + 1)
        if outcome in ("end", "return"):
            if verdict == "goto":  # goto does not come back: the caller's caller continues
                return "return", rule, chain
            continue
        return outcome, hit, where
    return "end", None, chain


def _run_rule(walk: _Walk, rule: Rule) -> tuple[Optional[bool], Optional[str], Optional[str],
                                                 Optional[str]]:
    """(matched: True/False/None=unknown, verdict, jump target, what was not understood)."""
    unknown: Optional[str] = None
    for expr in rule.exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            unknown = unknown or f"expression {json.dumps(expr)[:80]}"
            continue
        (kind, body), = expr.items()
        if kind == "match":
            result = _match_expr(walk, body, rule)
            if result is False:
                return False, None, None, None
            if isinstance(result, _Unknown):
                unknown = unknown or result.reason
            continue
        if kind in VERDICTS:
            if kind == "reject" and not _reject_applies(body, walk.flow):
                return False, None, None, None
            target = body.get("target") if isinstance(body, dict) else None
            return (None if unknown else True), kind, target, unknown
        if kind == "vmap":
            got = _vmap(walk, body, rule)
            if got is False:
                return (None if unknown else True), None, None, unknown
            if isinstance(got, _Unknown):
                return None, "unknown", None, unknown or got.reason
            verdict, target = got
            return (None if unknown else True), verdict, target, unknown
        if kind in NAT_STATEMENTS:
            # NAT decides in nat chains: the packet is accepted there (and may be rewritten).
            return (None if unknown else True), "accept", None, unknown
        if kind == "limit":
            if isinstance(body, dict) and body.get("inv"):
                return False, None, None, None  # "rate over": a single new flow is under it
            continue
        if kind == "quota":
            unknown = unknown or "quota (how much was used decides)"
            continue
        if kind == "xt":
            name = body.get("name", "?") if isinstance(body, dict) else "?"
            if isinstance(body, dict) and body.get("type") == "target":
                verdict = {"REJECT": "reject", "DROP": "drop", "ACCEPT": "accept",
                           "RETURN": "return"}.get(name)
                if verdict is None and name in PASSIVE_TARGETS:
                    continue
                if verdict is None:
                    return (None if unknown else True), "unknown", None, \
                        unknown or f"iptables target {name}"
                return (None if unknown else True), verdict, None, unknown
            unknown = unknown or f"iptables match {name!r}"
            continue
        if kind == "mangle" and not unknown:
            key = body.get("key", {}) if isinstance(body, dict) else {}
            if key == {"meta": {"key": "mark"}} and isinstance(body.get("value"), int):
                walk.mark = body["value"]
            continue
        if kind in PASSIVE_STATEMENTS or kind == "comment":
            continue
        if kind in ("fwd", "synproxy"):
            return (None if unknown else True), "unknown", None, unknown or f"statement {kind}"
        unknown = unknown or f"expression {kind!r}"
    return (None if unknown else True), None, None, unknown


def _reject_applies(body: Any, flow: Flow) -> bool:
    """``reject with icmp`` hides an IPv4-only match, icmpv6 an IPv6-only one, tcp reset TCP."""
    kind = body.get("type") if isinstance(body, dict) else None
    if kind == "icmp":
        return flow.family == 4
    if kind == "icmpv6":
        return flow.family == 6
    if kind == "tcp reset":
        return flow.protocol == "tcp"
    return True


def _proto_number(flow: Flow) -> int:
    if flow.protocol == "icmp":
        return 1 if flow.family == 4 else 58
    return PROTO_NUMBERS.get(flow.protocol, -1)


def _key(walk: _Walk, left: Any) -> Any:
    """The flow's value for a match's left side: (kind, value), _NA or _Unknown."""
    flow = walk.flow
    if not isinstance(left, dict) or len(left) != 1:
        return _Unknown(f"expression {json.dumps(left)[:60]}")
    (kind, body), = left.items()
    if kind == "payload" and isinstance(body, dict):
        proto, fld = body.get("protocol"), body.get("field")
        if proto in ("ip", "ip6"):
            if (proto == "ip") != (flow.family == 4):
                return _NA
            if fld == "daddr":
                return ("addr", _addr(flow.daddr))
            if fld == "saddr":
                if flow.saddr is None:
                    return _Unknown(f"{proto} saddr (source address not known)")
                return ("addr", _addr(flow.saddr))
            if fld in ("protocol", "nexthdr"):
                return ("proto", _proto_number(flow))
            if fld == "version":
                return ("int", flow.family)
            return _Unknown(f"{proto} {fld}")
        if proto in ("tcp", "udp", "th", "udplite", "sctp", "dccp"):
            if proto == "th":
                if flow.protocol not in ("tcp", "udp"):
                    return _NA
            elif proto != flow.protocol:
                return _NA
            if fld == "dport":
                return ("port", flow.dport)
            if fld == "sport":
                if flow.sport is None:
                    return _Unknown(f"{proto} sport (source port not known)")
                return ("port", flow.sport)
            if fld == "flags" and proto == "tcp":
                # the first packet of a new connection, or the answer to it
                return ("flags", {"syn", "ack"} if flow.reply else {"syn"})
            return _Unknown(f"{proto} {fld}")
        if proto in ("icmp", "icmpv6"):
            if flow.protocol != "icmp" or (proto == "icmp") != (flow.family == 4):
                return _NA
            if fld == "type":
                return ("icmp_type", (proto, flow.icmp_type or (
                    "echo-reply" if flow.reply else "echo-request")))
            if fld == "code":
                return ("int", 0)
            return _Unknown(f"{proto} {fld}")
        return _Unknown(f"{proto} {fld}")
    if kind == "meta" and isinstance(body, dict):
        key = body.get("key")
        if key == "l4proto":
            return ("proto", _proto_number(flow))
        if key == "nfproto":
            return ("str", "ipv4" if flow.family == 4 else "ipv6")
        if key == "protocol":
            return ("str", "ip" if flow.family == 4 else "ip6")
        if key in ("oifname", "oif"):
            if flow.hook in ("input", "prerouting"):
                return ("ifname", "")
            return ("ifname", flow.oifname) if flow.oifname else _Unknown(
                f"{key} (the egress interface is not known)")
        if key in ("iifname", "iif"):
            if flow.hook in ("output", "postrouting") and flow.iifname is None:
                return ("ifname", "")  # locally generated: no input interface
            return ("ifname", flow.iifname) if flow.iifname else _Unknown(f"{key}")
        if key == "mark":
            return ("int", walk.mark)
        if key == "nftrace":
            return ("int", 0)
        return _Unknown(f"meta {key}")
    if kind == "ct" and isinstance(body, dict):
        key = body.get("key")
        if key == "state":
            return ("flags", {flow.ct_state or ("established" if flow.reply else "new")})
        if key == "direction":
            return ("str", "reply" if flow.reply else "original")
        if key in ("l3proto",):
            return ("str", "ipv4" if flow.family == 4 else "ipv6")
        if key == "protocol":
            return ("proto", _proto_number(flow))
        return _Unknown(f"ct {key}")
    if kind == "concat" and isinstance(body, list):
        parts = [_key(walk, part) for part in body]
        if any(p is _NA for p in parts):
            return _NA
        bad = next((p for p in parts if isinstance(p, _Unknown)), None)
        if bad is not None:
            return bad
        return ("concat", parts)
    if kind == "fib" and isinstance(body, dict) and body.get("result") == "type" \
            and body.get("flags") in (["daddr"], "daddr") and flow.local_daddr is not None:
        return ("str", "local" if flow.local_daddr else "unicast")
    return _Unknown(render_expr(left))


def _match_expr(walk: _Walk, body: Any, rule: Rule) -> Union[bool, _Unknown]:
    if not isinstance(body, dict):
        return _Unknown("a malformed match")
    key = _key(walk, body.get("left"))
    if key is _NA:
        return False
    if isinstance(key, _Unknown):
        return key
    op = body.get("op", "==")
    right = body.get("right")
    kind, value = key
    if op in ("<", ">", "<=", ">="):
        if kind not in ("port", "int", "proto") or not isinstance(right, int) \
                or not isinstance(value, int):
            return _Unknown(f"{render_expr(body.get('left'))} {op} {render_value(right)}")
        return {"<": value < right, ">": value > right, "<=": value <= right,
                ">=": value >= right}[op]
    if op not in ("==", "!=", "in"):
        return _Unknown(f"operator {op!r}")
    hit = _member(walk, kind, value, right, rule)
    if isinstance(hit, _Unknown):
        return hit
    return (not hit) if op == "!=" else hit


def _elements(walk: _Walk, right: Any, rule: Rule) -> Union[list[Any], _Unknown, None]:
    """The elements a right-hand side stands for, or None when it is a single value."""
    if isinstance(right, str) and right.startswith("@"):
        named = walk.rs.sets.get((rule.family, rule.table, right[1:]))
        if named is None:
            return _Unknown(f"set {right} (not in the listing)")
        return named.elements
    if isinstance(right, dict) and "set" in right:
        elems = right["set"]
        return elems if isinstance(elems, list) else [elems]
    if isinstance(right, list):
        return right
    return None


def _member(walk: _Walk, kind: str, value: Any, right: Any, rule: Rule) -> Union[bool, _Unknown]:
    elems = _elements(walk, right, rule)
    if isinstance(elems, _Unknown):
        return elems
    if elems is None:
        return _element_hit(kind, value, right)
    if kind == "flags":
        names: set[str] = set()
        for e in elems:
            names.update(_flag_names(e))
        return bool(value & names)
    if isinstance(right, str) and len(elems) > 64 and kind in ("addr", "port", "proto", "ifname",
                                                                "str"):
        named = walk.rs.sets[(rule.family, rule.table, right[1:])]
        return _indexed_hit(named, kind, value)
    walk.steps += len(elems) // 16  # large anonymous sets count as work too
    result: Union[bool, _Unknown] = False
    for e in elems:
        if isinstance(e, list) and len(e) == 2:  # a map element: [key, value]
            e = e[0]
        hit = _element_hit(kind, value, e)
        if hit is True:
            return True
        if isinstance(hit, _Unknown):
            result = hit
    return result


def _flag_names(e: Any) -> set[str]:
    if isinstance(e, str):
        return {s.strip() for s in e.split(",")}
    if isinstance(e, list):
        return {str(x) for x in e}
    return {str(e)}


def _indexed_hit(named: NamedSet, kind: str, value: Any) -> Union[bool, _Unknown]:
    """Membership in a big named set, through an index built once per set and kind."""
    index = named._index.get(kind)
    if index is None:
        exact: set[Any] = set()
        rest: list[Any] = []
        for e in named.elements:
            if isinstance(e, list) and len(e) == 2:
                e = e[0]
            if isinstance(e, dict) and "elem" in e:
                e = e["elem"].get("val") if isinstance(e["elem"], dict) else e["elem"]
            norm = _normal(kind, e)
            if norm is not None and not isinstance(norm, _Unknown) and not (
                    kind == "ifname" and isinstance(e, str) and e.endswith("*")):
                exact.add(norm)
            else:
                rest.append(e)
        index = named._index[kind] = (exact, rest)
    exact, rest = index
    if not isinstance(value, tuple) and value in exact:
        return True
    result: Union[bool, _Unknown] = False
    for e in rest:
        hit = _element_hit(kind, value, e)
        if hit is True:
            return True
        if isinstance(hit, _Unknown):
            result = hit
    return result


def _normal(kind: str, e: Any) -> Any:
    """A scalar element in the form the flow's values have, or None when it is not a scalar."""
    if isinstance(e, dict) or isinstance(e, list):
        return None
    try:
        if kind == "addr":
            return _addr(str(e))
        if kind == "port":
            return e if isinstance(e, int) else socket.getservbyname(str(e))
        if kind == "proto":
            return e if isinstance(e, int) else PROTO_NUMBERS.get(str(e), None)
    except (ValueError, OSError):
        return _Unknown(f"value {e!r}")
    return e


def _element_hit(kind: str, value: Any, e: Any) -> Union[bool, _Unknown]:
    """Does one element (scalar, prefix, range, concatenation) hold the flow's value?"""
    if isinstance(e, dict) and "elem" in e:
        inner = e["elem"]
        e = inner.get("val") if isinstance(inner, dict) else inner
    if kind == "concat":
        parts = e.get("concat") if isinstance(e, dict) else None
        if not isinstance(parts, list) or len(parts) != len(value):
            return _Unknown("a concatenation of another shape")
        result: Union[bool, _Unknown] = True
        for (k, v), part in zip(value, parts):
            hit = _element_hit(k, v, part)
            if hit is False:
                return False
            if isinstance(hit, _Unknown):
                result = hit
        return result
    if kind == "port" and isinstance(value, tuple):
        return _port_range_hit(value, e)
    if isinstance(e, dict) and "prefix" in e:
        if kind != "addr":
            return _Unknown(f"a prefix on {kind}")
        try:
            p = e["prefix"]
            return value in ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False)
        except (KeyError, TypeError, ValueError):
            return _Unknown(f"prefix {e!r}")
    if isinstance(e, dict) and "range" in e:
        try:
            lo, hi = (_normal(kind, x) for x in e["range"])
            if isinstance(lo, _Unknown) or isinstance(hi, _Unknown) or lo is None or hi is None:
                return _Unknown(f"range {e!r}")
            if kind == "addr" and value.version != lo.version:
                return False
            return bool(lo <= value <= hi)
        except (TypeError, ValueError):
            return _Unknown(f"range {e!r}")
    if isinstance(e, (dict, list)):
        return _Unknown(f"value {render_value(e)}")
    if kind == "ifname":
        name = str(e)
        if name.endswith("*") and not name.endswith("\\*"):
            return value.startswith(name[:-1])
        return value == name.replace("\\*", "*")
    if kind == "icmp_type":
        proto, name = value
        if isinstance(e, int):
            return ICMP_TYPE_NUMBERS.get((proto, name)) == e
        return str(e) == name
    if kind == "flags":
        return bool(value & _flag_names(e))
    if kind == "str":
        return str(e) == str(value)
    norm = _normal(kind, e)
    if isinstance(norm, _Unknown):
        return norm
    if kind == "addr" and norm.version != value.version:
        return False
    return norm == value


def _port_range_hit(span: tuple[int, int], e: Any) -> Union[bool, _Unknown]:
    """A source port somewhere in ``span`` (the ephemeral range) against one element."""
    lo, hi = span
    if isinstance(e, dict) and "range" in e:
        a, b = (_normal("port", x) for x in e["range"])
    else:
        a = b = _normal("port", e)
    if not isinstance(a, int) or not isinstance(b, int):
        return _Unknown(f"port {render_value(e)}")
    if a <= lo and hi <= b:
        return True
    if b < lo or a > hi:
        return False
    return _Unknown(f"source port {render_value(e)} (only part of the ephemeral range "
                    f"{lo}-{hi})")


def _vmap(walk: _Walk, body: Any, rule: Rule) -> Union[bool, _Unknown, tuple[str, Optional[str]]]:
    """The verdict a ``vmap`` statement gives the flow (False: no element matches)."""
    if not isinstance(body, dict):
        return _Unknown("a malformed vmap")
    key = _key(walk, body.get("key"))
    if key is _NA:
        return False
    if isinstance(key, _Unknown):
        return key
    kind, value = key
    data = body.get("data")
    elems = _elements(walk, data, rule)
    if isinstance(elems, _Unknown):
        return elems
    for pair in elems or []:
        if isinstance(pair, dict) and "elem" in pair:
            pair = pair["elem"].get("val") if isinstance(pair["elem"], dict) else pair
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        hit = _element_hit(kind, value, pair[0])
        if isinstance(hit, _Unknown):
            return hit
        if hit:
            verdict = pair[1]
            if isinstance(verdict, dict) and len(verdict) == 1:
                (name, arg), = verdict.items()
                target = arg.get("target") if isinstance(arg, dict) else None
                return name, target
            return _Unknown(f"vmap verdict {verdict!r}")
    return False


def _addr(text: str) -> Any:
    return ipaddress.ip_address(text.split("%")[0])


# -- rendering ---------------------------------------------------------------------------------

def render_rule(exprs: Iterable[Any]) -> str:
    """A rule's JSON expressions in the syntax ``nft list ruleset`` prints."""
    return " ".join(part for part in (render_stmt(e) for e in exprs) if part)


def render_expr(expr: Any) -> str:
    """The left side of a match (payload, meta, ct, concatenation...)."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return render_value(expr)
    (kind, body), = expr.items()
    if kind == "payload" and isinstance(body, dict):
        if "protocol" in body:
            return f"{body['protocol']} {body.get('field', '')}".strip()
        return f"@{body.get('base', '')},{body.get('offset', '')},{body.get('len', '')}"
    if kind == "meta" and isinstance(body, dict):
        key = body.get("key", "")
        return key if key in BARE_META else f"meta {key}"
    if kind == "ct" and isinstance(body, dict):
        parts = ["ct"]
        if body.get("dir"):
            parts.append(str(body["dir"]))
        if body.get("family"):
            parts.append(str(body["family"]))
        parts.append(str(body.get("key", "")))
        return " ".join(parts)
    if kind == "concat" and isinstance(body, list):
        return " . ".join(render_expr(e) for e in body)
    if kind == "fib" and isinstance(body, dict):
        flags = body.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        return f"fib {' . '.join(flags)} {body.get('result', '')}".strip()
    if kind in ("&", "|", "^", "<<", ">>") and isinstance(body, list) and len(body) == 2:
        return f"{render_expr(body[0])} {kind} {render_value(body[1])}"
    if kind == "tcp option" and isinstance(body, dict):
        return f"tcp option {body.get('name', '')} {body.get('field', '')}".strip()
    return f"{kind} {json.dumps(body, separators=(',', ':'))}"


def render_value(value: Any, quote: bool = False) -> str:
    """A right-hand value: scalars, prefixes, ranges, sets, flag lists."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"' if quote else value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ",".join(render_value(v, quote) for v in value)
    if isinstance(value, dict):
        if "prefix" in value and isinstance(value["prefix"], dict):
            return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
        if "range" in value and isinstance(value["range"], list):
            return "-".join(render_value(v, quote) for v in value["range"])
        if "set" in value:
            elems = value["set"] if isinstance(value["set"], list) else [value["set"]]
            return "{ " + ", ".join(_render_elem(e, quote) for e in elems) + " }"
        if "concat" in value and isinstance(value["concat"], list):
            return " . ".join(render_value(v, quote) for v in value["concat"])
        if "elem" in value and isinstance(value["elem"], dict):
            return render_value(value["elem"].get("val"), quote)
        if len(value) == 1:
            (kind, body), = value.items()
            if kind in VERDICTS:
                return render_stmt(value)
        return render_expr(value)
    return json.dumps(value)


def _render_right(left: Any, right: Any, quote: bool) -> str:
    """Marks print as 32-bit hex (0x00000007), as nft does; everything else as a value."""
    is_mark = isinstance(left, dict) and any(
        isinstance(left.get(k), dict) and left[k].get("key") == "mark" for k in ("meta", "ct"))
    if is_mark and isinstance(right, int):
        return f"0x{right:08x}"
    return render_value(right, quote)


def _render_elem(e: Any, quote: bool) -> str:
    if isinstance(e, list) and len(e) == 2:  # a map element
        return f"{render_value(e[0], quote)} : {render_value(e[1], quote)}"
    return render_value(e, quote)


def render_stmt(expr: Any) -> str:
    """One expression of a rule (a match or a statement) as nft prints it."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return json.dumps(expr)
    (kind, body), = expr.items()
    if kind == "match" and isinstance(body, dict):
        left = body.get("left")
        quote = isinstance(left, dict) and "meta" in left and isinstance(left["meta"], dict) \
            and left["meta"].get("key") in IFNAME_KEYS
        op = body.get("op", "==")
        right = body.get("right")
        sep = " " if op in ("==", "in") else f" {op} "
        return f"{render_expr(left)}{sep}{_render_right(left, right, quote)}"
    if kind in ("accept", "drop", "return", "continue"):
        return kind
    if kind in ("jump", "goto") and isinstance(body, dict):
        return f"{kind} {body.get('target', '')}"
    if kind == "reject":
        if not isinstance(body, dict) or not body:
            return "reject"
        kind_ = body.get("type")
        if kind_ == "tcp reset":
            return "reject with tcp reset"
        if body.get("expr") is None:
            return "reject"
        return f"reject with {kind_} {body['expr']}"
    if kind == "counter":
        if isinstance(body, dict) and "packets" in body:
            return f"counter packets {body['packets']} bytes {body.get('bytes', 0)}"
        return "counter" if not isinstance(body, str) else f"counter name {body}"
    if kind == "log":
        if isinstance(body, dict) and body.get("target"):
            return f"# {body['target']}"
        if isinstance(body, dict) and body.get("prefix") is not None:
            return f'log prefix "{body["prefix"]}"'
        return "log"
    if kind == "limit" and isinstance(body, dict):
        if not body.get("per"):
            return "limit"
        over = "over " if body.get("inv") else ""
        return f"limit rate {over}{body.get('rate')}/{body.get('per')}"
    if kind == "vmap" and isinstance(body, dict):
        return f"{render_expr(body.get('key'))} vmap {render_value(body.get('data'))}"
    if kind == "xt" and isinstance(body, dict):
        return f"xt {body.get('type', '')} \"{body.get('name', '')}\""
    if kind == "comment":
        return f'comment "{body}"'
    if kind in NAT_STATEMENTS:
        if isinstance(body, dict) and body.get("addr") is not None:
            return f"{kind} to {render_value(body['addr'])}"
        return kind
    if kind == "mangle" and isinstance(body, dict):
        key = body.get("key")
        return f"{render_expr(key)} set {_render_right(key, body.get('value'), False)}"
    if kind == "notrack":
        return "notrack"
    return f"{kind} {json.dumps(body, separators=(',', ':'))}"


# -- the run's firewall finding -------------------------------------------------------------

@dataclass
class LocalFirewall:
    """This host's rules, judged for every flow netcheck sends to the target."""

    readable: bool
    reason: Optional[str] = None  # why the rules could not be read
    hook: str = "output"
    ruleset: Optional[Ruleset] = None
    verdicts: list[Verdict] = field(default_factory=list)
    duration_ms: float = 0.0

    def blocking(self, address: Optional[str] = None,
                 protocol: Optional[str] = None) -> list[Verdict]:
        """Verdicts that drop or reject (for one address / protocol when given)."""
        return [v for v in self.verdicts if v.blocked
                and (address is None or v.flow.daddr == address)
                and (protocol is None or v.flow.protocol == protocol)]

    def blocks(self, address: str, protocol: Optional[str] = None) -> Optional[Verdict]:
        """The first verdict that blocks a flow to ``address``, or None."""
        found = self.blocking(address, protocol)
        return found[0] if found else None

    def summary_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"readable": self.readable, "hook": self.hook}
        if self.reason:
            out["reason"] = self.reason
        if self.ruleset is not None:
            out["ruleset"] = self.ruleset.summary()
        out["flows"] = [v.to_json() for v in self.verdicts]
        return out


def target_flows(addresses: list[str], port: int, protocols: tuple[str, ...],
                 paths: dict[str, tuple[Optional[str], Optional[str]]],
                 with_ping: bool = True) -> list[Flow]:
    """The flows netcheck itself sends: a connect per address and protocol, and a ping."""
    flows: list[Flow] = []
    for address in addresses:
        fam = 6 if ":" in address and not _is_mapped(address) else 4
        daddr = address.split("%")[0]
        if fam == 4 and ":" in daddr:
            daddr = str(ipaddress.ip_address(daddr).ipv4_mapped)  # type: ignore[attr-defined]
        oif, src = paths.get(address, (None, None))
        for proto in protocols:
            flows.append(Flow(fam, proto, daddr, port, saddr=src, oifname=oif,
                              sport=_ephemeral_range()))
        if with_ping:
            flows.append(Flow(fam, "icmp", daddr, None, saddr=src, oifname=oif, sport=None))
    return flows


def reply_flow(remote: str, local: Optional[str], protocol: str, remote_port: Optional[int],
               iifname: Optional[str]) -> Flow:
    """The reply a probe to ``remote`` gets, as this host's input chains see it.

    ``local``: the source address the probe left with (None: unknown, rules on it are
    uncertain); ``remote_port``: the port probed (the reply's source port). The reply goes
    to the probe's own port: somewhere in the ephemeral range.
    """
    fam = 6 if ":" in remote and not _is_mapped(remote) else 4
    daddr = (local or ("::" if fam == 6 else "0.0.0.0")).split("%")[0]
    ports = protocol != "icmp"
    return Flow(fam, protocol, daddr, saddr=remote.split("%")[0],
                dport=_ephemeral_range() if ports else None,
                sport=remote_port if ports else None, iifname=iifname, hook="input",
                reply=True)


def neighbour_advert_flow(remote: str, local: Optional[str], iifname: Optional[str]) -> Flow:
    """The neighbour advertisement an IPv6 neighbour answers a solicitation with, as this
    host's input chains see it: ICMPv6 type 136, not tracked (``ct state untracked``), so a
    ``ct state established,related accept`` does not let it in."""
    return Flow(6, "icmp", (local or "::").split("%")[0], saddr=remote.split("%")[0],
                sport=None, iifname=iifname, hook="input", reply=True,
                icmp_type="nd-neighbor-advert", ct_state="untracked")


def _is_mapped(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.version == 6 and ip.ipv4_mapped is not None  # type: ignore[union-attr]


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            lo, hi = fh.read().split()[:2]
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def judge(flows: list[Flow], timeout: float, hook: str = "output",
          ruleset: Optional[Ruleset] = None, live_text: Optional[bool] = None) -> LocalFirewall:
    """Read the rules (unless given) and evaluate each flow; blocking, for ctx.blocking().

    live_text (default: when the rules are read here): quote a blocking nft rule as nft
    itself prints it (``nft -a list chain``) rather than rendered from the JSON.
    """
    start = time.monotonic()
    live = ruleset is None if live_text is None else live_text
    rs = ruleset if ruleset is not None else read_ruleset(timeout)
    if not rs.readable:
        return LocalFirewall(False, rs.error, hook, rs)
    budget = max(0.2, timeout - (time.monotonic() - start))
    verdicts = []
    for flow in flows:
        per_flow = max(0.05, budget / max(1, len(flows)))
        verdicts.append(evaluate(rs, dataclasses.replace(flow, hook=hook),
                                 time_budget=per_flow))
    for v in verdicts if live else []:
        if v.rule is not None and v.rule.source == "nft" and v.rule.text is None \
                and v.rule.handle is not None:
            v.rule.text = _rule_text_from_nft(v.rule, timeout=1.0)
    return LocalFirewall(True, None, hook, rs, verdicts, (time.monotonic() - start) * 1000)


@dataclass
class Dnat:
    """Where a nat chain sends a flow: the rule, and the new destination (port None: same)."""

    rule: Rule
    addr: str
    port: Optional[int]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule.to_json(), "to": self.addr, "port": self.port}


def dnat_of(rs: Ruleset, flow: Flow, hook: str = "prerouting",
            time_budget: float = 0.5) -> Optional[Dnat]:
    """The DNAT the nat chains of ``hook`` (prerouting for what arrives, output for what this
    host sends) apply to a new flow — Docker's published ports: ``-A PREROUTING -m addrtype
    --dst-type LOCAL -j DOCKER``, ``-A DOCKER ! -i docker0 -p tcp --dport 8081 -j DNAT
    --to-destination 172.17.0.2:80`` — or None (no DNAT, or one whose target is not known)."""
    walk = _Walk(dataclasses.replace(flow, hook=hook), rs, MAX_STEPS,
                 time.monotonic() + time_budget)
    for chain in rs.base_chains(hook, flow.family):
        if chain.type != "nat":
            continue
        outcome, rule, _where = _run_chain(walk, chain, 0)
        if outcome != "accept" or rule is None:
            continue
        for expr in rule.exprs:
            body = expr.get("dnat") if isinstance(expr, dict) else None
            if isinstance(body, dict) and isinstance(body.get("addr"), str):
                port = body.get("port")
                return Dnat(rule, body["addr"], port if isinstance(port, int) else None)
        return None  # the first nat decision is final (snat, redirect, an accept)
    return None


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


def _read_timeout(ctx: Context) -> float:
    return max(1.0, min(max(ctx.options.timeout, 2.0), ctx.time_left() - 0.5))


def rules(ctx: Context) -> Any:
    """The run's one reading of this host's rules (memoised; an awaitable :class:`Ruleset`)."""
    return ctx.memo_shared(("firewall", "rules"),
                           lambda: ctx.blocking(read_ruleset, _read_timeout(ctx)))


async def judge_flows(ctx: Context, flows: list[Flow], hook: str = "output") -> LocalFirewall:
    """Judge any flows against the run's one reading of the rules.

    For other checks too: e.g. the DNS checks could ask about ``udp 53`` to each resolver.
    """
    if not has_cap_net_admin():
        return LocalFirewall(False, NEEDS_ROOT, hook)
    rs = await rules(ctx)
    if not rs.readable:
        return LocalFirewall(False, rs.error, hook, rs)
    return await ctx.blocking(judge, flows, _read_timeout(ctx), hook, rs, True)


def for_target(ctx: Context, hook: str = "output") -> Any:
    """This host's rules judged for the target's flows (memoised: an awaitable LocalFirewall).

    Any check may await it: the transport checks do, and ``network.target`` can, to tell
    its own silence from this host's block.
    """
    return ctx.memo(("firewall", hook), lambda: _for_target(ctx, hook))


async def _for_target(ctx: Context, hook: str) -> LocalFirewall:
    if not has_cap_net_admin():
        return LocalFirewall(False, NEEDS_ROOT, hook)
    if ctx.target is None:
        return LocalFirewall(False, "no target", hook)
    addresses = (await ctx.addresses())[:8]
    paths: dict[str, tuple[Optional[str], Optional[str]]] = {}
    try:
        path = await ctx.path()
        for lookup in path.lookups:
            paths[lookup.destination] = (lookup.ifname, lookup.prefsrc)
    except Exception:  # the route lookup failing only makes interface rules uncertain
        pass
    protocols = ("tcp", "udp") if ctx.target.scheme == "dns" else ("tcp",)
    return await judge_flows(ctx, target_flows(addresses, ctx.target.port, protocols, paths),
                             hook)


async def blocked_addresses(ctx: Context) -> dict[str, str]:
    """Target addresses this host's own output rules block (any flow), with the rule.

    Empty when the rules cannot be read (no CAP_NET_ADMIN) or block nothing: for
    ``network.target``, which must not call a locally dropped target unreachable.
    """
    fw = await for_target(ctx)
    out: dict[str, str] = {}
    for v in fw.blocking():
        out.setdefault(v.flow.daddr, f"{v.flow.describe()}: {v.action} by {v.describe()}")
    return out


# -- remedies ----------------------------------------------------------------------------------

def nft_accept_match(flow: Flow) -> str:
    """The nft match that lets exactly this flow through.

    For a reply, what every input chain needs: the replies of connections this host opened.
    """
    if flow.icmp_type == "nd-neighbor-advert":
        return "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }"
    if flow.reply:
        return "ct state established,related"
    ip = "ip" if flow.family == 4 else "ip6"
    if flow.protocol == "icmp":
        icmp = "icmp" if flow.family == 4 else "icmpv6"
        return f"{ip} daddr {flow.daddr} {icmp} type echo-request"
    return f"{ip} daddr {flow.daddr} {flow.protocol} dport {flow.dport}"


def iptables_accept_match(flow: Flow) -> str:
    """The iptables options that select exactly this flow (a reply: established ones)."""
    if flow.icmp_type == "nd-neighbor-advert":
        return "-p ipv6-icmp --icmpv6-type neighbour-advertisement"
    if flow.reply:
        return "-m conntrack --ctstate ESTABLISHED,RELATED"
    if flow.protocol == "icmp":
        if flow.family == 4:
            return f"-d {flow.daddr} -p icmp --icmp-type echo-request"
        return f"-d {flow.daddr} -p ipv6-icmp --icmpv6-type echo-request"
    return f"-d {flow.daddr} -p {flow.protocol} --dport {flow.dport}"


def remedy_commands(v: Verdict) -> list[str]:
    """Exact commands that remove the blocking rule, or let this flow through before it."""
    flow = v.flow
    if v.rule is not None:
        r = v.rule
        if r.source == "nft":
            where = f"{r.family} {r.table} {r.chain}"
            if r.handle is None:
                return [f"nft -a list chain {where}"]
            return [f"nft delete rule {where} handle {r.handle}",
                    f"nft insert rule {where} position {r.handle} {nft_accept_match(flow)} accept"]
        table = "" if r.table == "filter" else f"-t {r.table} "
        cmds = []
        if r.spec is not None:
            cmds.append(f"{r.command} {table}-D {r.chain} {r.spec}")
        cmds.append(f"{r.command} {table}-I {r.chain} {r.position} "
                    f"{iptables_accept_match(flow)} -j ACCEPT")
        if r.source == "iptables-nft" and r.handle is not None:
            cmds.append(f"nft delete rule {r.family} {r.table} {r.chain} handle {r.handle}"
                        "   # the same rule, through nft")
        return cmds
    if v.by_policy and v.chain is not None:
        c = v.chain
        if c.source == "nft":
            return [f"nft add rule {c.family} {c.table} {c.name} {nft_accept_match(flow)} accept"]
        table = "" if c.table == "filter" else f"-t {c.table} "
        return [f"{c.command} {table}-A {c.name} {iptables_accept_match(flow)} -j ACCEPT"]
    return []
