"""``make demo``: break a lab network on purpose and let netcheck find the fault.

As root, it builds the namespace lab, applies one fault scenario, runs netcheck inside the
client namespace, shows the report and tears everything down. Without root (or without
network namespaces) it says why and diagnoses a listener on loopback instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

DEFAULT_SCENARIO = "wrong_gateway"


def _loopback_demo(reason: str) -> int:
    print(f"The lab needs root and network namespaces ({reason}).")
    print("Diagnosing a listener on loopback instead:\n", flush=True)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    try:
        return subprocess.run([sys.executable, "-m", "netcheck", f"tcp://127.0.0.1:{port}"],
                              check=False).returncode
    finally:
        server.close()


def main(argv: list[str]) -> int:
    from netcheck.lab.topology import Lab, lab_support_problem

    name = argv[0] if argv else os.environ.get("SCENARIO", DEFAULT_SCENARIO)
    problem = lab_support_problem()
    if problem:
        return _loopback_demo(problem)
    from netcheck.lab.scenarios import SCENARIOS

    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}; one of: {' '.join(sorted(SCENARIOS))}")
        return 3
    scenario = SCENARIOS[name]
    with Lab() as lab:
        scenario.apply(lab)
        print(f"Scenario {name}: {scenario.description}")
        print(f"Symptom: {scenario.symptom}")
        print(f"$ ip netns exec {lab.ns(getattr(scenario, 'role', 'client'))} netcheck "
              f"{' '.join(scenario.netcheck_argv(lab))}"
              "\n", flush=True)
        env = dict(os.environ)
        if sys.stdout.isatty():
            env.setdefault("FORCE_COLOR", "1")
        role = getattr(scenario, "role", "client")
        proc = lab.exec(role, [sys.executable, "-m", "netcheck", *scenario.netcheck_argv(lab)],
                        timeout=60, env=env)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        print(f"\n(exit code {proc.returncode}; the lab is torn down now)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
