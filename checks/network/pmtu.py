"""The path MTU rung (``network.pmtu``): full-size packets get through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.target import _header_bytes

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import icmp, shared
    from netcheck.runner import Context, PathInfo
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    icmp, shared = (lazy(f"netcheck.probes.{name}")
                    for name in ("icmp", "shared"))


def _start_full_size_probes(ctx: Context) -> None:
    """The rung's first bursts leave with the path's own (``Check.starts``): on a healthy
    path the full-size replies are back while ``network.target`` still counts its echoes,
    and the rung only reads them. They prove the size passes or nothing: any other outcome
    is probed again once the target's answers are known (its round trip sets the wait)."""
    if ctx.target is not None and ctx.facts.privileged:  # raw sockets: bursts in ms
        ctx.memo("pmtu-early", lambda: _early_bursts(ctx))


async def _early_bursts(ctx: Context) -> dict[tuple[str, int], Any]:
    """(address, MTU) -> the small and full-size DF bursts, for the first address of each
    family of the target, as :func:`path_mtu` picks them."""
    addrs, path = await ctx.addresses(), await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    if link is None or link.mtu <= 0 or link.is_loopback:
        return {}
    first = _first_of_each_family(addrs, path)
    bursts = {}
    for fam, addr in first.items():
        mtu = _egress_link(ctx, path, fam, link).mtu
        bursts[(addr, mtu)] = _df_bursts(addr, min(ctx.timeout, EARLY_WAIT), mtu)
    found = await asyncio.gather(*bursts.values())
    return dict(zip(bursts, found))


def _df_bursts(addr: str, timeout: float, mtu: int) -> Any:
    """The small and the full-size DF bursts to ``addr``, sent together."""
    return asyncio.gather(
        icmp.burst(addr, timeout, PMTU_PROBES, PMTU_INTERVAL, 56, df=True),
        icmp.burst(addr, timeout, PMTU_PROBES, PMTU_INTERVAL, mtu - _header_bytes(addr),
                   df=True))


async def _early(ctx: Context, addr: str, mtu: int) -> Optional[Any]:
    """The early (small, full-size) bursts of ``addr`` at ``mtu``, None when none left."""
    task = ctx.started("pmtu-early")
    if task is None:
        return None
    try:
        return (await task).get((addr, mtu))
    except Exception:  # the early bursts failed: the rung sends its own
        return None


@check("network.pmtu", Layer.NETWORK, requires=("network.target",),
       codes=("PMTU_BLACKHOLE", "MTU_MISMATCH"), starts=_start_full_size_probes)
async def path_mtu(ctx: Context) -> Result:
    """Full-size packets get through.

    Echo requests with Don't-Fragment at the interface's MTU and below (``ping -M do -s``),
    in bursts so that a lost packet is not taken for a vanished size: a router with a
    smaller MTU must answer "fragmentation needed"; if small packets pass and full-size ones
    vanish with no such answer — more of them than the path's loss explains — the path is
    a black hole for big transfers (handshakes work, downloads stall): broken when the
    flow's own transfer stalls on it (an HTTP download), a warning while the exchange asked
    for still works. With root, the first bursts leave with the path's echo bursts, before
    the target is known to answer: full-size replies back by then are the proof; anything
    else is probed again, as described, once the target's round trip is known.
    """
    target = ctx.result("network.target")
    answering = list(target.evidence.get("answering_ping", [])) if target else []
    if not answering and target is not None:
        by_tcp = await _pmtu_by_http(ctx, target)
        if by_tcp is not None:
            return by_tcp
    if not answering and target is not None and all(
            p.get("state") == "unavailable" for p in target.evidence.get("ping", [{}])):
        return skipped(_("needs root (or CAP_NET_RAW, or ping_group_range) to send ICMP "
                         "probes"))
    if not answering:
        return skipped(_("the target does not answer ping: the path MTU cannot be probed"))
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    if link is None or link.mtu <= 0:
        return skipped(_("no egress interface MTU to test"))
    if link.is_loopback:
        # The packets never leave this host: no router on the way can have a smaller MTU.
        return skipped(_("the target is on this host ({ifname}): there is no path MTU to "
                         "probe").format(ifname=link.name))
    # One address of each family the target answers on: a router may drop the "too big"
    # of one family only (ICMPv6's packet-too-big and ICMP's fragmentation-needed are two
    # rules), so the flow's other family can meet a black hole the first does not.
    first = _first_of_each_family(answering, path)
    assert target is not None
    found = await asyncio.gather(*(_path_mtu_to(ctx, target, _egress_link(ctx, path, fam, link),
                                                addr) for fam, addr in first.items()))
    rank = {Status.FAIL: 0, Status.WARN: 1}
    worst = min(found, key=lambda r: (rank.get(r.status, 2), r.code != "PMTU_BLACKHOLE"))
    oversize = sum(int(r.evidence.get("oversize_probes") or 0) for r in found)
    if oversize:
        worst.evidence["oversize_probes"] = oversize
    if len(found) > 1:
        worst.evidence["families"] = {addrfam.name(f): r.code or r.status.value
                                      for f, r in zip(first, found)}
        if worst.code and any(r.code != worst.code for r in found):
            worst.evidence["family"] = addrfam.name(addrfam.family_of(
                str(worst.evidence["address"])))
    return worst


def _first_of_each_family(addresses: list[str], path: PathInfo) -> dict[int, str]:
    """family -> the first of ``addresses`` in it, the path's own family first."""
    first: dict[int, str] = {}
    for a in sorted(addresses, key=lambda a: addrfam.family_of(a) != path.family):
        first.setdefault(addrfam.family_of(a), a)
    return first


def _egress_link(ctx: Context, path: PathInfo, family: int, default: Any) -> Any:
    """The interface a family's packets leave by (its route lookup's), else ``default``."""
    lk = path.for_family(family)
    link = ctx.facts.link(index=lk.oif) if lk is not None and lk.oif is not None else None
    return link if link is not None and link.mtu > 0 and not link.is_loopback else default


async def _path_mtu_to(ctx: Context, target: Result, link: Any, addr: str) -> Result:
    """network.pmtu's probes of one address (see :func:`path_mtu`)."""
    hdr = _header_bytes(addr)
    mtu = link.mtu
    # The target answered ping already: a probe silent for many of its round trips is lost.
    rtt_ms = float(target.evidence.get("rtt_ms") or 100.0)
    t = min(ctx.timeout, max(0.3, rtt_ms * 8 / 1000))
    early = await _early(ctx, addr, mtu)
    if early is not None and early[1].received:
        small, full = early
    else:
        small, full = await _df_bursts(addr, t, mtu)
    evidence: dict[str, object] = {"interface": link.name, "local_mtu": mtu, "address": addr,
                                   "small": small.to_json(), "full": full.to_json(),
                                   "sent_early": full is (early or (None, None))[1]}
    if full.received:
        return passed(_("{mtu}-byte packets reach {address} unfragmented").format(
            mtu=mtu, address=addr), path_mtu=mtu, **evidence)
    if full.mtu and full.mtu < mtu:
        return _mtu_mismatch(addr, link.name, mtu, full, evidence)
    small_back = small.received / small.sent if small.sent else 0.0
    if not small.received or (1.0 - small_back) ** max(1, full.sent) > 0.01:
        # Full-size silence that the small packets' own loss explains is loss, not MTU.
        return passed(_("small packets were lost too: packet loss, not an MTU problem"),
                      **evidence)
    # The early full-size probes went too, and a link that refuses them counts them.
    sizes: list[tuple[int, int]] = [(mtu, _attempts(full) + (_attempts(early[1]) if early
                                                             else 0))]
    found = await _search_path_mtu(addr, hdr, mtu, t, sizes)
    evidence["path_mtu"] = found
    if found is not None:
        # The probes too big for the path: a link that refuses them counts them (and the
        # kernel's resends of them) as its own drops; link.errors tells those apart.
        evidence["oversize_probes"] = sum(n for size, n in sizes if size > found)
    if found is None:
        return passed(_("full-size packets were lost once, then passed: plain packet loss"),
                      **evidence)
    return await _blackhole(ctx, target, addr, link.name, mtu, found, evidence)


def _mtu_mismatch(addr: str, ifname: str, mtu: int, full: icmp.BurstResult,
                  evidence: dict[str, object]) -> Result:
    """MTU_MISMATCH: the path's MTU is below the interface's, and path MTU discovery works
    (a router's "fragmentation needed", or the kernel's cached path MTU)."""
    evidence["path_mtu"] = full.mtu
    summary = (_("path MTU to {address} is {path_mtu}, {ifname}'s MTU is {mtu} ({router} "
                 "says fragmentation needed)") if full.icmp_from
               else _("path MTU to {address} is {path_mtu}, {ifname}'s MTU is {mtu} (the "
                      "kernel knows fragmentation needed)"))
    return warned("MTU_MISMATCH",
                  summary.format(address=addr, path_mtu=full.mtu, ifname=ifname, mtu=mtu,
                                 router=full.icmp_from),
                  Hint(_("Path MTU discovery works here, so traffic flows; matching the "
                         "interface MTU to the path avoids the extra round trip."),
                       [f"ip link set dev {ifname} mtu {full.mtu}",
                        hints.mtu_probe(addr, mtu)]), **evidence)


async def _blackhole(ctx: Context, target: Result, addr: str, ifname: str, mtu: int,
                     found: int, evidence: dict[str, object]) -> Result:
    """PMTU_BLACKHOLE: packets over ``found`` bytes vanish with no ICMP 'too big'."""
    # Broken only when the flow's own transfer stalls on it; a handshake and small exchanges
    # pass a black hole (their packets are small): then it is a warning of what big
    # transfers will meet.
    stalled = await _transfer_stalled(ctx, target)
    summary = (_("packets over {path_mtu} bytes to {address} vanish with no ICMPv6 'packet "
                 "too big' (path MTU {path_mtu}, {ifname} MTU {mtu})") if ":" in addr
               else _("packets over {path_mtu} bytes to {address} vanish with no ICMP "
                      "'fragmentation needed' (path MTU {path_mtu}, {ifname} MTU {mtu})")).format(
                          path_mtu=found, address=addr, ifname=ifname, mtu=mtu)
    if stalled is not None:
        evidence["transfer"] = stalled
        summary += " " + _("and the transfer from {address} stalls").format(address=addr)
    else:
        summary += " " + _("(the exchange asked for still works: its packets are small; big "
                           "transfers will stall)")
    report = failed if stalled is not None else warned
    return report("PMTU_BLACKHOLE", summary,
                  Hint(_("A router on the path has a smaller MTU and its ICMP 'too big' "
                         "messages are dropped by a firewall: big transfers stall. Lower "
                         "this host's MTU (or clamp the TCP MSS on the router) and let ICMP "
                         "type 3 code 4 / ICMPv6 type 2 through."),
                       [f"ip link set dev {ifname} mtu {found}",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # " + _("on the router"),
                        hints.mtu_probe(addr, mtu)]), **evidence)


SMALL_MSS = 536  # the minimum every IPv4 path must carry (RFC 879)
STALLS = ("timeout", "stall", "body_stall")


async def _transfer_stalled(ctx: Context, target: Optional[Result]) -> Optional[dict[str, Any]]:
    """The flow's own transfer when it stalls (the run's GET of an http(s) target), else
    None: nothing of the flow stalled (or it moves no data that could)."""
    assert ctx.target is not None
    if target is None or ctx.target.scheme not in ("http", "https"):
        return None
    opened = [c["address"] for c in target.evidence.get("tcp", []) if c.get("state") == "open"]
    if not opened:
        return None
    got = await shared.http_get(ctx, opened[0])
    if got.outcome not in STALLS:
        return None
    return {"outcome": got.outcome, "bytes": got.bytes_received}


async def _pmtu_by_http(ctx: Context, target: Result) -> Optional[Result]:
    """Without ping, a web target still shows a black hole: a GET that stalls with
    full-size segments but completes when our SYN asks for small ones (TCP_MAXSEG)."""
    assert ctx.target is not None
    if ctx.target.scheme not in ("http", "https"):
        return None
    opened = [c["address"] for c in target.evidence.get("tcp", []) if c.get("state") == "open"]
    if not opened:
        return None
    addr = opened[0]
    normal = await shared.http_get(ctx, addr)
    evidence: dict[str, Any] = {"address": addr, "method": "HTTP GET, normal and small MSS",
                                "normal": {"outcome": normal.outcome,
                                           "bytes": normal.bytes_received}}
    if normal.outcome not in STALLS:
        return passed(_("{address} does not answer ping, but its HTTP answer came back "
                        "({outcome}, {bytes} bytes): no sign of a path-MTU black hole").format(
                            address=addr, outcome=normal.outcome, bytes=normal.bytes_received),
                      **evidence)
    small = await shared.http_get(ctx, addr, mss=SMALL_MSS)
    evidence["small_mss"] = {"mss": SMALL_MSS, "outcome": small.outcome,
                             "bytes": small.bytes_received}
    if small.outcome in STALLS or small.bytes_received <= normal.bytes_received:
        return None  # the application itself stalls: not the path's fault
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    ifname = link.name if link else (path.interface or "<interface>")
    mtu = link.mtu if link else 1500
    return failed("PMTU_BLACKHOLE",
                  _("the HTTP answer from {address} stalls after {bytes} bytes with full-size "
                    "segments but arrives whole with {mss}-byte segments: packets near "
                    "{ifname}'s MTU {mtu} vanish on the way").format(
                        address=addr, bytes=normal.bytes_received, mss=SMALL_MSS,
                        ifname=ifname, mtu=mtu),
                  Hint(_("A router between here and the server has a smaller MTU and its ICMP "
                         "'fragmentation needed' is dropped: big segments vanish, the download "
                         "stalls. Lower this host's MTU (or clamp the MSS on the router) and let "
                         "ICMP type 3 code 4 / ICMPv6 type 2 through."),
                       [f"ip link set dev {ifname} mtu 1400",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # " + _("on the router"),
                        hints.mtu_probe(addr, mtu)]), **evidence)


# DF probes per size: 16 silent full-size probes while small ones pass is not chance even
# with 40 % of packets lost each way (0.64^16 < 0.1 %); the search rounds use fewer.
PMTU_PROBES = 16
PMTU_INTERVAL = 0.005
# How long the early bursts wait for replies (the target's round trip is not known yet): a
# full-size reply later than this proves nothing early, and the rung probes again.
EARLY_WAIT = 0.3
SEARCH_PROBES = 4


def _attempts(burst: icmp.BurstResult) -> int:
    """Probes a burst tried to send: those sent, and the one the kernel refused."""
    return burst.sent + (1 if burst.state == "send_error" else 0)


async def _search_path_mtu(addr: str, hdr: int, mtu: int, timeout: float,
                           sent: Optional[list[tuple[int, int]]] = None) -> Optional[int]:
    """The largest packet that gets through, by rounds of parallel bursts of DF probes.

    None when the full size passes on a second try (the first loss was chance). ``sent``
    gets ``(size, probes tried)`` for every burst.
    """
    floor = 1280 if ":" in addr else 576
    low, high = floor, mtu  # low: assumed to pass, high: known to vanish
    for _round in range(3):
        if high - low <= 1:
            break
        step = max(1, (high - low) // 8)
        sizes = sorted({min(high - 1, low + step * i) for i in range(1, 8)} | {low})
        sizes = [s for s in sizes if low <= s < high]
        probes = [icmp.burst(addr, timeout, SEARCH_PROBES, PMTU_INTERVAL, s - hdr, df=True)
                  for s in sizes]
        probes.append(icmp.burst(addr, timeout, PMTU_PROBES if high == mtu else SEARCH_PROBES,
                                 PMTU_INTERVAL, high - hdr, df=True))
        results = await asyncio.gather(*probes)
        if sent is not None:
            sent += [(s, _attempts(r)) for s, r in zip([*sizes, high], results)]
        if results[-1].received and high == mtu:
            return None
        passing = [s for s, r in zip(sizes, results[:-1]) if r.received]
        if not passing:
            return low if low > floor else None
        low = max(passing)
        failing = [s for s, r in zip(sizes, results[:-1]) if not r.received and s > low]
        high = min(failing) if failing else high
    return low
