"""Two tiny servers for the SSRF tests, run as ``python -c SCRIPT ...`` on loopback or inside a
lab namespace: a *redirector* (an allowed web server that answers every request with a 302 to
a fixed Location) and a *canary* (a listener outside the allow-list that records every
connection reaching it). Each writes its ready file once it listens.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# Both take argv: address port ARG ready-file, and share this opening.
_LISTEN = r"""
import socket, sys, threading
address, port, arg, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, port)); s.listen(64)
"""

# ARG: the Location every answer carries.
REDIRECTOR = _LISTEN + r"""
open(ready, "w").close()

def answer(c):
    c.settimeout(3)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            got = c.recv(4096)
            if not got:
                return
            data += got
        body = b"<html><title>moved</title></html>"
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + arg.encode() + b"\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                  b"Connection: close\r\n\r\n" + body)
    except OSError:
        pass
    finally:
        c.close()

while True:
    c, _ = s.accept()
    threading.Thread(target=answer, args=(c,), daemon=True).start()
"""

# ARG: the file that gets one line (the peer's address) per connection.
CANARY = _LISTEN + r"""
open(arg, "w").close()
open(ready, "w").close()
while True:
    c, peer = s.accept()
    with open(arg, "a") as fh:
        fh.write(peer[0] + "\n")
    c.close()
"""


def wait_ready(path: Path, proc: subprocess.Popen, timeout: float = 10) -> None:  # type: ignore[type-arg]
    """Wait for a helper's ready file (fail if the helper died first)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"helper did not start (exit {proc.poll()})")
        time.sleep(0.02)


def start_local(script: str, *args: str, ready: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    """Run a helper on this host (loopback addresses only) and wait until it listens."""
    proc = subprocess.Popen([sys.executable, "-I", "-c", script, *args, str(ready)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ready, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """End one helper we started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def hits(path: Path, settle: float = 0.3) -> list[str]:
    """The peers the canary recorded (after a moment for a late connection to land)."""
    time.sleep(settle)
    return path.read_text().split() if path.exists() else []
