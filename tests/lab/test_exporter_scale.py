"""A real Prometheus scrapes 100 lab targets through one ``netcheck serve``, every 5 seconds.

The targets (:mod:`tests.lab.scale`) are what a monitoring system meets: healthy tcp and http
services, slow ones (1.5 s to answer, still healthy), refused ports and a failing application
(503), and one name the lab's DNS serves (dual stack, TTL 60). After six scrape rounds
Prometheus' own view must show: no missed scrape (``up`` 1 for every target at every round,
``scrape_duration_seconds`` under the timeout), ``probe_success`` right for each kind, the right
root cause on every failing target, healthy ones answered by the exchange alone
(``netcheck_ladder 0``), no 503 from the exporter, and the name resolved once per TTL rather
than once per scrape (the lab DNS server's log).

The bigger run (1 000 targets every 15 s for 5 minutes, the exporter's memory) is
``bench/exporter_bench.py``'s, not CI's.
"""

from __future__ import annotations

import time
from pathlib import Path

from netcheck.lab.topology import Lab
from tests.canary import stop

from . import scale
from .test_exporter_lab import EXPORTER, PROMETHEUS, prometheus_binary, start_exporter

COUNTS = {"tcp": 35, "http": 34, "slow": 15, "refused": 8, "http_error": 7}  # + 1 name = 100
INTERVAL = 5.0
ROUNDS = 6
NAME_TARGET = "http://www.lab.test/"  # the lab's own web server on 198.18.2.10 and ::10, port 80


def test_prometheus_scrapes_a_hundred_targets_with_no_missed_scrape(lab: Lab,
                                                                     tmp_path: Path) -> None:
    prometheus_binary()
    addrs = scale.prepare(lab, sum(COUNTS.values()))
    targets = scale.mix(addrs, COUNTS) + [scale.Target(NAME_TARGET, "http")]
    exporter = start_exporter(lab, "--allow", str(scale.SWEEP), "--allow", "www.lab.test")
    config = scale.prometheus_config(EXPORTER, [t.url for t in targets], INTERVAL, INTERVAL)
    prometheus = scale.start_prometheus(lab, tmp_path, config, PROMETHEUS)
    try:
        time.sleep(INTERVAL * ROUNDS + 2)
        up_min, rounds, slowest = scale.round_queries(INTERVAL * ROUNDS)
        busy = 'netcheck_exporter_rejections_total{reason="busy"}'
        dropped = 'sum(netcheck_exporter_connections_dropped_total)'
        seen = scale.query(lab, f"http://{PROMETHEUS}", [
            up_min, rounds, slowest, "probe_success", "netcheck_root_cause", "netcheck_ladder",
            busy, dropped])
    finally:
        stop(prometheus)
        stop(exporter)
    logs = lab.log("prometheus")[-1500:] + lab.log("exporter")[-1500:]
    urls = {t.url for t in targets}
    up = scale.by_instance(seen[up_min])
    assert set(up) == urls and set(up.values()) == {1.0}, (up, logs)
    assert min(scale.by_instance(seen[rounds]).values()) >= ROUNDS - 1, seen[rounds]
    durations = scale.by_instance(seen[slowest])
    assert max(durations.values()) < INTERVAL, sorted(durations.items(), key=lambda x: -x[1])[:5]
    success = scale.by_instance(seen["probe_success"])
    wrong = {t.url: success.get(t.url) for t in targets
             if success.get(t.url) != (0.0 if t.code else 1.0)}
    assert not wrong, (wrong, logs)
    causes = {m["instance"]: m["code"] for m, _ in seen["netcheck_root_cause"]}
    assert causes == {t.url: t.code for t in targets if t.code}, causes
    ladder = scale.by_instance(seen["netcheck_ladder"])
    assert {u for u, v in ladder.items() if v == 0.0} == {t.url for t in targets if not t.code}
    assert [float(v) for _, v in seen[busy]] == [0.0] and seen[dropped][0][1] == "0"
    # Every scrape of the name asked the cache, not the lab's DNS server: its A and AAAA
    # questions came once (TTL 60 s), not once a round.
    questions = [line for line in lab.log("dns").splitlines() if "www.lab.test." in line]
    assert 1 <= len(questions) <= 4, questions
