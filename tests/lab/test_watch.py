"""``--watch`` for real: a 2-second outage (port 22 dropped at r2 on a timer) in a 20-second
watch of one round a second is caught, told as it happens, and summarised when SIGTERM ends
the watch — in text and, at the same time, in ndjson."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from netcheck.lab import scenarios_path2 as p2
from netcheck.lab.compose import ComposedLab
from netcheck.lab.topology import _tool, python_argv
from tests.schema import validate_report

TARGET = f"tcp://{p2.SERVER[0]}:22"
OUTAGE_AFTER, OUTAGE_FOR, WATCH_FOR = 7.0, 2.0, 20.0


@pytest.fixture
def lab(lab_support: None) -> Iterator[ComposedLab]:
    instance = p2.two_routers()
    instance.build()
    try:
        yield instance
    finally:
        instance.teardown()


def watcher(lab: ComposedLab, fmt: str, folder: Path) -> subprocess.Popen[bytes]:
    """``netcheck TARGET --watch 1`` in the client namespace, stdout and stderr to files of
    their own (a pipe nobody reads for 20 s would hold the watch up)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    argv = [_tool("ip"), "netns", "exec", lab.ns("client"),
            *python_argv("-m", "netcheck", TARGET, "-4", "--watch", "1", "--timeout", "1",
                         "--format", fmt)]
    with open(folder / f"{fmt}.out", "wb") as out, open(folder / f"{fmt}.err", "wb") as err:
        return subprocess.Popen(argv, stdout=out, stderr=err, env=env)


def outputs(proc: subprocess.Popen[bytes], fmt: str, folder: Path) -> tuple[str, str]:
    """What the watcher wrote to stdout and stderr, once it has ended."""
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()  # the one process this test started, by PID
        proc.wait(timeout=5)
        raise
    return ((folder / f"{fmt}.out").read_text(encoding="utf-8"),
            (folder / f"{fmt}.err").read_text(encoding="utf-8"))


def seconds(clock: str, day: float) -> float:
    """A HH:MM:SS of today as wall-clock seconds (the watch prints local time)."""
    midnight = datetime.fromtimestamp(day).replace(hour=0, minute=0, second=0, microsecond=0)
    h, m, s = (int(x) for x in clock.split(":"))
    return midnight.timestamp() + h * 3600 + m * 60 + s


def test_a_two_second_outage_is_caught_and_summarised(lab: ComposedLab,
                                                      tmp_path: Path) -> None:
    p2.toggle(lab, p2.R2, p2.ruleset("forward", "tcp dport 22 drop"), OUTAGE_AFTER, OUTAGE_FOR)
    started = time.time()
    text, ndjson = watcher(lab, "text", tmp_path), watcher(lab, "ndjson", tmp_path)
    try:
        time.sleep(WATCH_FOR)
    finally:
        for proc in (text, ndjson):
            proc.send_signal(signal.SIGTERM)  # by PID: the watcher itself (ip netns exec execs)
    out, err = outputs(text, "text", tmp_path)
    nd_out, nd_err = outputs(ndjson, "ndjson", tmp_path)
    toggled = p2.times(lab.log("toggle"))
    assert set(toggled) == {"applied", "removed"}, lab.log("toggle")
    explain = f"--- text\n{out}\n{err}\n--- ndjson stderr\n{nd_err}\ntoggle {toggled}"

    # Text: a line a round, the change told when it happened, the summary at the end.
    assert text.returncode == 2, explain  # the worst verdict seen
    rounds = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", line)]
    assert len(rounds) >= 8, explain  # about 16 when the machine is idle
    broken = [line for line in rounds if "BROKEN" in line]
    assert broken and all("TCP_FILTERED (L4)" in line for line in broken), explain
    down = re.search(r"── (\d\d:\d\d:\d\d) changed: OK -> BROKEN ──", out)
    up = re.search(r"── (\d\d:\d\d:\d\d) changed: BROKEN -> OK \(outage of ([\d.]+) s\) ──",
                   out)
    assert down and up, explain
    # A round's time is its start, to the second; the fault may come in while it runs.
    when = seconds(down.group(1), started)
    assert toggled["applied"] - 2.5 <= when <= toggled["removed"] + 1.5, explain
    # Where the SYN stops (hop 2), or, for a round the fault ended in, that it came and went.
    assert re.search(r"where the packets stop: (the SYN gets as far as 198\.18\.6\.2 \(hop 2\)"
                     r"|the probes reached 198\.18\.2\.10 \(hop 3\) .* comes and goes)",
                     out), explain
    assert "watch ended by SIGTERM: summary" in out
    summary = out.split("watch ended by SIGTERM: summary", 1)[1]
    outage = re.search(r"longest outage: ([\d.]+) s", summary)
    assert outage and 0.5 <= float(outage.group(1)) <= OUTAGE_FOR + 3.0, explain
    assert "causes seen: TCP_FILTERED at L4 (transport.tcp" in summary
    assert "flaps: the verdict changed 2 times" in summary
    share = re.search(r"ok: (\d+) of (\d+) rounds", summary)
    assert share and 0 < int(share.group(1)) < int(share.group(2)) == len(rounds), explain

    # ndjson: stdout holds one netcheck/1 document a round and nothing else; the summary is
    # on stderr.
    try:
        docs = [json.loads(line) for line in nd_out.splitlines()]
    except ValueError:
        pytest.fail(f"ndjson stdout holds something else than documents:\n{nd_out[-3000:]}")
    for doc in docs:
        validate_report(doc)
    verdicts = [doc["verdict"] for doc in docs]
    assert "broken" in verdicts and verdicts[0] == "ok" and verdicts[-1] == "ok", verdicts
    failing = [doc for doc in docs if doc["verdict"] == "broken"]
    assert all(doc["root_cause"]["code"] == "TCP_FILTERED" for doc in failing)
    assert failing[0]["root_cause"]["location"]["last_hop"] in (2, 3)  # 3: it came and went
    assert "watch ended by SIGTERM: summary" in nd_err
    assert f"of {len(docs)} rounds" in nd_err
