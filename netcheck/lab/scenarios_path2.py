"""Faults on a path of two routers, for finding where packets stop, and faults on a timer.

The lab is a composed one (:mod:`netcheck.lab.compose`, ``Parts(routers=2)``)::

    client eth0 ──lan0 router wan0 ──down0 core srv0 ──eth0 server
                                           core dns0 ──eth0 dns

    hop 1  router (r1)  198.18.1.1   2001:db8:1::1    (its address towards the client)
    hop 2  core   (r2)  198.18.6.2   2001:db8:6::2
    hop 3  server       198.18.2.10  2001:db8:2::10   name server 198.18.3.53 (also hop 3)

Each fault is a few nft rules in a table of its own in one router's namespace (``clear``
removes it): a drop in the forward chain (the router still answers TTL-expired probes — the
TTL is checked before the forward hook — so it is the last hop that answers), a reset forged in
the server's name (``reject with tcp reset``), or a limit on the router's own ICMP errors
(nft ``limit``, as routers rate-limit "time exceeded"). The lab's sysctls turn the kernel's
own ICMP rate limit off, so only these rules limit anything.

``python -m netcheck.lab.scenarios_path2 toggle --after A --for D FILE`` runs inside a lab
namespace (the lab starts it with :func:`toggle` and ends it by PID): after A seconds it loads
the ruleset FILE, D seconds later it deletes the table again — a fault that comes and goes,
for ``--watch``. It prints when it did each, as wall-clock seconds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.compose import ComposedLab, Parts
from netcheck.lab.topology import python_argv

R1, R2 = "router", "core"
HOP_ADDRESSES = {1: ("198.18.1.1", "2001:db8:1::1"), 2: ("198.18.6.2", "2001:db8:6::2")}
SERVER = ("198.18.2.10", "2001:db8:2::10")
NAME_SERVER = "198.18.3.53"
TABLE = "netcheck_path2"
TWO_ROUTERS = Parts(family="dual", routers=2)


def two_routers(**kwargs: Any) -> ComposedLab:
    """An unbuilt dual-stack lab client -> r1 -> r2 -> server (``build()`` or ``with`` it)."""
    return ComposedLab(TWO_ROUTERS, **kwargs)


def ruleset(hook: str, *rules: str, table: str = TABLE) -> str:
    """An nft table holding one base chain of ``hook`` with these rules."""
    body = "".join(f"    {rule}\n" for rule in rules)
    return (f"table inet {table} {{\n  chain {hook} {{\n"
            f"    type filter hook {hook} priority 0; policy accept;\n{body}  }}\n}}\n")


def drop_port(lab: ComposedLab, role: str, port: int, proto: str = "tcp") -> None:
    """``role`` forwards nothing to ``port`` (a firewall that drops it silently)."""
    lab.nft(role, ruleset("forward", f"{proto} dport {port} drop"))


def drop_host(lab: ComposedLab, role: str, addresses: Sequence[str] = SERVER) -> None:
    """``role`` forwards nothing to these addresses (a host cut off beyond the router)."""
    rules = [f"{'ip6' if ':' in a else 'ip'} daddr {a} drop" for a in addresses]
    lab.nft(role, ruleset("forward", *rules))


def forge_reset(lab: ComposedLab, role: str, port: int) -> None:
    """``role`` answers SYNs to ``port`` with a reset in the server's name (a firewall's
    ``reject with tcp reset``, a portal's interception)."""
    lab.nft(role, ruleset("forward", f"tcp dport {port} reject with tcp reset"))


def limit_icmp_errors(lab: ComposedLab, role: str, rate: str = "1/minute",
                      burst: int = 1) -> None:
    """``role`` sends at most ``rate`` "time exceeded" errors (after a burst of ``burst``):
    the rest are dropped as they leave, as a router that rate-limits its ICMP does."""
    limit = f"limit rate over {rate} burst {burst} packets drop"
    lab.nft(role, ruleset("output", f"icmp type time-exceeded {limit}",
                          f"icmpv6 type time-exceeded {limit}", table=f"{TABLE}_limit"))


def pmtu_blackhole(lab: ComposedLab, role: str = R2, device: str = "srv0",
                   mtu: int = 1280) -> None:
    """``role``'s link ``device`` carries only ``mtu`` bytes and its "fragmentation needed"
    and "packet too big" answers are dropped as they leave: big packets vanish there."""
    lab.ip(role, "link", "set", device, "mtu", str(mtu))
    lab.nft(role, ruleset("output", "icmp type destination-unreachable icmp code frag-needed "
                          "drop", "icmpv6 type packet-too-big drop"))
    # Real full-size frames from the client, not offloaded super-frames (STYLE.md).
    lab.exec("client", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


def clear(lab: ComposedLab, role: str, table: str = TABLE) -> None:
    """Remove a fault of this module from ``role`` (nothing happens if there is none)."""
    lab.exec(role, ["nft", "delete", "table", "inet", table])


def toggle(lab: ComposedLab, role: str, rules: str, after: float, duration: float,
           name: str = "toggle") -> Any:
    """Apply ``rules`` (an nft ruleset of table ``netcheck_path2``) in ``role`` after ``after``
    seconds and remove them ``duration`` seconds later; returns the Popen (ended by the lab's
    teardown, by PID). Its log (``lab.log(name)``) says when each happened."""
    path = Path(lab.state_dir) / f"{name}.nft"
    path.write_text(rules)
    return lab.popen(role, python_argv("-m", "netcheck.lab.scenarios_path2", "toggle",
                                       "--after", f"{after:g}", "--for", f"{duration:g}",
                                       str(path)), name=name)


def times(log: str) -> dict[str, float]:
    """The wall-clock seconds a toggle's log gives for ``applied`` and ``removed``."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        word, _sep, value = line.partition(" ")
        if word in ("applied", "removed"):
            try:
                found[word] = float(value)
            except ValueError:
                continue
    return found


def _nft() -> str:
    return shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin") or "nft"


def run_toggle(after: float, duration: float, path: str) -> int:
    """Load ruleset ``path`` after ``after`` seconds, delete its table ``duration`` later."""
    nft = _nft()
    time.sleep(after)
    subprocess.run([nft, "-f", path], check=True, stdin=subprocess.DEVNULL)
    print(f"applied {time.time():.3f}", flush=True)
    time.sleep(duration)
    subprocess.run([nft, "delete", "table", "inet", TABLE], check=True,
                   stdin=subprocess.DEVNULL)
    print(f"removed {time.time():.3f}", flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m netcheck.lab.scenarios_path2 toggle --after A --for D FILE``."""
    parser = argparse.ArgumentParser(prog="python -m netcheck.lab.scenarios_path2")
    sub = parser.add_subparsers(dest="command", required=True)
    tog = sub.add_parser("toggle", help="apply an nft ruleset for a while, then remove it")
    tog.add_argument("--after", type=float, required=True)
    tog.add_argument("--for", dest="duration", type=float, required=True)
    tog.add_argument("ruleset")
    args = parser.parse_args(argv)
    try:
        return run_toggle(args.after, args.duration, args.ruleset)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
