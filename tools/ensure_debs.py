"""Install the Debian packages the lab needs when they are missing (``make deps``).

Servers in these packages would try to start on the host's own network when installed,
so a policy-rc.d that forbids starting services is in place during the install (and
removed afterwards if we created it). Without root or apt-get, it only says what is
missing: the lab tests then skip with that reason (and fail under CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# package -> a binary that proves it is installed
PROVIDES = {
    "iproute2": "ip", "nftables": "nft", "iptables": "iptables", "iputils-ping": "ping",
    "ethtool": "ethtool", "tcpdump": "tcpdump", "dnsutils": "dig", "util-linux": "setpriv",
    "procps": "sysctl", "nmap": "nmap",
    "prometheus": "prometheus", "fping": "fping", "tshark": "tshark",
    # Debian 12's `nginx` is the whole server (ssl and realip built in); nginx-light only
    # adds the echo module on top of it.
    "nginx": "nginx", "curl": "curl",
    # dnsmasq-base: the binary alone (no service started on install), for the campaign's stub.
    "dnsmasq-base": "dnsmasq",
    # dockerd, not docker: a docker CLI alone (another package, a static binary in
    # /usr/local/bin) is no engine. busybox-static: the lab's image is its one binary.
    "docker.io": "dockerd", "busybox-static": "busybox",
    # The exporter bench's baseline (bench/exporter_bench.py only, not the lab's LAB_DEBS).
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}
POLICY = "/usr/sbin/policy-rc.d"


def _have(binary: str) -> bool:
    return shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is not None


def main(packages: list[str]) -> int:
    missing = [p for p in packages if not _have(PROVIDES.get(p, p))]
    if not missing:
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"make deps: missing Debian packages {' '.join(missing)} (need root and apt-get "
              "to install them); lab tests will be skipped", file=sys.stderr)
        return 0
    created = False
    if not os.path.exists(POLICY):
        with open(POLICY, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY, 0o755)
        created = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env)
    finally:
        if created:
            os.unlink(POLICY)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
