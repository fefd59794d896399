"""Benchmark: ``netcheck pcap FILE --format json`` against ``tshark -q -z conv,tcp -r FILE``.

Run with ``.venv/bin/python bench/pcap_bench.py [--packets N] [--rounds R] [--keep DIR]``.

1. Generates a capture of ``--packets`` (default 1,000,000) packets, deterministically (fixed
   seed), written as pcap by :mod:`netcheck.pcap.writer`: thousands of interleaved TCP sessions
   of realistic shapes and sizes (HTTP with responses of 2-60 KB, TLS 1.3 with a ClientHello of
   ~520 bytes and records of up to 16 KB, SSH banners, a few refused and unanswered SYNs, some
   retransmissions and duplicate ACKs) plus DNS over UDP; full-size Ethernet frames (an MTU of
   1500, ACKs of 66 bytes), addresses from 198.18.0.0/15 only. Checksums are left at zero, as
   in any capture taken on a host with checksum offload: tshark does not verify them by
   default and netcheck never does.
2. Times both commands on that same file, ``--rounds`` times, alternating which runs first,
   and takes the median wall time of each; netcheck's peak memory is the child's own
   ``ru_maxrss`` (``os.wait4`` on its PID, so tshark's memory never mixes in).
3. Prints the figures, the ratio and PASS/MISS against the targets (faster than tshark, peak
   under 300 MB). It is a benchmark, never a test: a MISS is reported and the exit code is 0.

tshark must be installed (Debian package ``tshark``); without it the tshark side is SKIP.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_RSS_MB = 300.0
MSS = 1448

ETH_C2S = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
ETH_S2C = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
_ip = struct.Struct(">BBHHHBBH4s4s").pack
_tcp = struct.Struct(">HHIIBBHHH").pack
_udp = struct.Struct(">HHHH").pack
_rec = struct.Struct("<IIII").pack
TS_OPT = b"\x01\x01\x08\x0a"  # NOP NOP then kind 8 len 10 (values appended)
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


class Conv:
    """One TCP conversation as a generator of (from_client, flags, payload, seq, ack) steps."""

    def __init__(self, rng: random.Random, idx: int) -> None:
        self.rng = rng
        # Unique 5-tuples: clients spread over 198.18.0.0/16, servers in 198.19.0.0/16.
        self.caddr = bytes((198, 18, (idx >> 8) & 0xFF, idx & 0xFF))
        self.saddr = bytes((198, 19, rng.randrange(256), rng.randrange(1, 255)))
        self.cport = 32768 + rng.randrange(28000)
        self.cseq = rng.randrange(1 << 32)
        self.sseq = rng.randrange(1 << 32)
        kind = rng.random()
        if kind < 0.55:
            self.sport, self.steps = 80, self._http()
        elif kind < 0.88:
            self.sport, self.steps = 443, self._tls()
        elif kind < 0.94:
            self.sport, self.steps = 22, self._ssh()
        elif kind < 0.97:
            self.sport, self.steps = rng.choice((23, 8080, 3306)), self._refused()
        else:
            self.sport, self.steps = rng.choice((22, 445, 5432)), self._dropped()

    def _open(self) -> Iterator[tuple]:
        yield True, SYN, b"", None
        yield False, SYN | ACK, b"", None
        yield True, ACK, b"", None

    def _data(self, from_client: bool, size: int, lossy: bool = True) -> Iterator[tuple]:
        sent = 0
        unacked = 0
        while sent < size:
            chunk = min(MSS, size - sent)
            flags = PSH | ACK if sent + chunk >= size else ACK
            yield from_client, flags, chunk, None
            if lossy and self.rng.random() < 0.01:
                # The peer saw a gap: two duplicate ACKs, then the segment comes again.
                yield not from_client, ACK, 0, "dup"
                yield not from_client, ACK, 0, "dup"
                yield from_client, flags, chunk, "again"
            sent += chunk
            unacked += 1
            if unacked == 2 or sent >= size:
                yield not from_client, ACK, 0, None
                unacked = 0

    def _close(self, client_first: bool) -> Iterator[tuple]:
        yield client_first, FIN | ACK, 0, None
        if self.rng.random() < 0.5:
            yield not client_first, FIN | ACK, 0, None
        else:
            yield not client_first, ACK, 0, None
            yield not client_first, FIN | ACK, 0, None
        yield client_first, ACK, 0, None

    def _http(self) -> Iterator[tuple]:
        yield from self._open()
        for _ in range(1 if self.rng.random() < 0.8 else 3):
            yield True, PSH | ACK, b"GET /page/%d HTTP/1.1\r\nHost: www.lab.test\r\n" % \
                self.rng.randrange(1000) + b"x" * self.rng.randrange(200, 400) + b"\r\n\r\n", None
            yield False, ACK, 0, None
            body = self.rng.choice((2000, 6000, 15000, 30000, 60000))
            yield False, ACK, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body + \
                b"y" * 1300, None
            yield True, ACK, 0, None
            yield from self._data(False, body - 1300)
        yield from self._close(self.rng.random() < 0.5)

    def _tls(self) -> Iterator[tuple]:
        yield from self._open()
        hello = bytearray(517)
        hello[0:5] = b"\x16\x03\x01\x02\x00"
        hello[5:9] = b"\x01\x00\x01\xfc"
        hello[9:11] = b"\x03\x03"
        yield True, PSH | ACK, bytes(hello), None
        yield False, ACK, 0, None
        first = b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03" + b"r" * 117 + \
            b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x0b\x00" + b"e" * 1180
        yield False, ACK, first, None
        yield from self._data(False, 2816 - 1180, lossy=False)
        yield True, PSH | ACK, b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x35" + b"f" * 53, None
        for _ in range(self.rng.randrange(1, 4)):
            yield True, PSH | ACK, b"\x17\x03\x03\x01\x00" + b"g" * 256, None
            size = self.rng.choice((3000, 12000, 40000, 90000))
            yield from self._data(False, size)
        yield True, PSH | ACK, b"\x17\x03\x03\x00\x13" + b"a" * 19, None
        yield from self._close(True)

    def _ssh(self) -> Iterator[tuple]:
        yield from self._open()
        yield False, PSH | ACK, b"SSH-2.0-OpenSSH_9.2p1 netcheck-lab\r\n", None
        yield True, ACK, 0, None
        yield True, PSH | ACK, b"SSH-2.0-OpenSSH_9.2p1 client\r\n", None
        yield from self._data(False, self.rng.randrange(1000, 8000))
        yield from self._data(True, self.rng.randrange(500, 3000))
        yield from self._close(False)

    def _refused(self) -> Iterator[tuple]:
        yield True, SYN, b"", None
        yield False, RST | ACK, 0, None

    def _dropped(self) -> Iterator[tuple]:
        for _ in range(3):
            yield True, SYN, b"", "wait"


def _frame(conv: Conv, from_client: bool, flags: int, payload: bytes, seq: int,
           ack: int) -> bytes:
    opts = b""
    if flags & SYN:
        opts = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + b"\0" * 8 + b"\x01\x03\x03\x07"
    elif flags & ACK:
        opts = TS_OPT + b"\0" * 8
    thl = 20 + len(opts)
    if from_client:
        src, dst, sp, dp, eth = conv.caddr, conv.saddr, conv.cport, conv.sport, ETH_C2S
    else:
        src, dst, sp, dp, eth = conv.saddr, conv.caddr, conv.sport, conv.cport, ETH_S2C
    tcp = _tcp(sp, dp, seq, ack if flags & ACK else 0, (thl // 4) << 4, flags,
               502 if not flags & SYN else 64240, 0, 0) + opts
    ip = _ip(0x45, 0, 20 + thl + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return eth + ip + tcp + payload


def _dns_frames(rng: random.Random, t: float, idx: int) -> list[tuple[float, bytes]]:
    client = bytes((198, 18, 250, idx % 250 + 1))
    server = bytes((198, 18, 3, 53))
    qname = b"\x03www\x03lab\x04test\x00"
    ident = rng.randrange(65536)
    port = 1024 + rng.randrange(60000)
    query = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
    answer = struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0) + qname + b"\x00\x01\x00\x01" \
        + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes((198, 18, 2, 10))
    out = []
    for src, dst, sp, dp, body, eth, dt in ((client, server, port, 53, query, ETH_C2S, 0.0),
                                            (server, client, 53, port, answer, ETH_S2C,
                                             0.0003)):
        udp = _udp(sp, dp, 8 + len(body), 0) + body
        ip = _ip(0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
        out.append((t + dt, eth + ip + udp))
    return out


def generate(path: Path, packets: int, seed: int = 6) -> dict[str, int]:
    """Write the benchmark capture; return what it holds."""
    rng = random.Random(seed)
    t = 1_700_000_000.0
    written = 0
    sessions = 0
    live: list[tuple[Conv, Iterator[tuple]]] = []
    with open(path, "wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

        def put(ts: float, data: bytes) -> None:
            sec = int(ts)
            fh.write(_rec(sec, int((ts - sec) * 1e6), len(data), len(data)))
            fh.write(data)

        while written < packets:
            while len(live) < 120:
                conv = Conv(rng, sessions)
                sessions += 1
                live.append((conv, conv.steps))
            t += rng.expovariate(1 / 0.00002)
            if rng.random() < 0.01:
                for ts, data in _dns_frames(rng, t, written)[:packets - written]:
                    put(ts, data)
                    written += 1
                continue
            i = rng.randrange(len(live))
            conv, steps = live[i]
            try:
                from_client, flags, payload, mark = next(steps)
            except StopIteration:
                live.pop(i)
                continue
            if isinstance(payload, int):
                payload = b"z" * payload
            if from_client:
                seq, ack = conv.cseq, conv.sseq
            else:
                seq, ack = conv.sseq, conv.cseq
            if mark == "again":
                seq = (seq - len(payload)) & 0xFFFFFFFF  # the same bytes once more
            put(t, _frame(conv, from_client, flags, payload, seq, ack))
            written += 1
            if mark == "again":
                continue
            advance = len(payload) + (1 if flags & (SYN | FIN) else 0)
            if flags & SYN and mark == "wait":
                advance = 0  # the SYN is sent again with the same ISN
            if from_client:
                conv.cseq = (conv.cseq + advance) & 0xFFFFFFFF
            else:
                conv.sseq = (conv.sseq + advance) & 0xFFFFFFFF
    return {"packets": written, "sessions": sessions, "bytes": path.stat().st_size}


def run_measured(argv: list[str]) -> tuple[float, float, int, bytes]:
    """Run ``argv``; wall seconds, the child's own peak RSS in MB, exit code, stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        data = out.read()
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, data


def tshark_conversations(output: bytes) -> int:
    """Number of conversations in ``tshark -z conv,tcp`` output."""
    return sum(1 for line in output.decode(errors="replace").splitlines() if "<->" in line)


def main(argv: Optional[list[str]] = None) -> int:
    """Generate, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="keep the capture in DIR")
    args = parser.parse_args(argv)
    tshark = shutil.which("tshark")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nc-pcap-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.pcap"
    try:
        start = time.perf_counter()
        info = generate(path, args.packets)
        gen_s = time.perf_counter() - start
        print(f"capture: {info['packets']} packets, {info['sessions']} TCP sessions, "
              f"{info['bytes'] / 1e6:.0f} MB, generated in {gen_s:.1f} s ({path})")
        ours: list[float] = []
        theirs: list[float] = []
        rss: list[float] = []
        sessions_ours = sessions_theirs = None
        nc_argv = [PYTHON, "-m", "netcheck", "pcap", str(path), "--format", "json"]
        ts_argv = [tshark, "-q", "-z", "conv,tcp", "-r", str(path)] if tshark else None
        for r in range(args.rounds):
            order = [("netcheck", nc_argv), ("tshark", ts_argv)]
            if r % 2:
                order.reverse()
            for name, cmd in order:
                if cmd is None:
                    continue
                wall, peak, code, output = run_measured(cmd)
                if name == "netcheck":
                    ours.append(wall)
                    rss.append(peak)
                    if code != 0:
                        print(f"netcheck exited {code}")
                    doc = json.loads(output)
                    sessions_ours = doc.get("sessions_total", len(doc["sessions"]))
                else:
                    theirs.append(wall)
                    sessions_theirs = tshark_conversations(output)
                print(f"  round {r + 1} {name:8} {wall:7.2f} s" +
                      (f"  peak {peak:6.1f} MB" if name == "netcheck" else ""))
        nc = statistics.median(ours)
        peak = max(rss)
        print()
        print(f"{'figure':34} {'value':>12} {'target':>12}  result")
        print(f"{'netcheck pcap --format json':34} {nc:10.2f} s {'':>12}")
        print(f"{'netcheck packets per second':34} {info['packets'] / nc:10.0f}   {'':>12}")
        speed = "SKIP"
        if theirs:
            ts = statistics.median(theirs)
            ratio = nc / ts
            speed = "PASS" if ratio < 1.0 else "MISS"
            print(f"{'tshark -q -z conv,tcp':34} {ts:10.2f} s {'':>12}")
            print(f"{'ratio netcheck / tshark':34} {ratio:12.2f} {'< 1.00':>12}  {speed}")
        memory = "PASS" if peak < TARGET_RSS_MB else "MISS"
        print(f"{'netcheck peak RSS':34} {peak:9.1f} MB {TARGET_RSS_MB:9.0f} MB  {memory}")
        print(f"{'TCP sessions netcheck / tshark':34} {sessions_ours!s:>12} "
              f"{sessions_theirs!s:>12}  "
              f"{'same' if sessions_ours == sessions_theirs else 'DIFFERENT'}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
