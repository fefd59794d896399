"""A real Docker engine in the lab's server namespace: Debian's ``docker.io``, its own everything.

The slides' server is a WordPress in Docker: ``docker-proxy`` holds the published ports, DNAT
rules send clients to the container, ``docker logs`` has their requests. The lab runs the same
engine, ``dockerd`` 20.10 from Debian, inside the server namespace and nowhere else:

- entered with ``nsenter --net=/run/netns/NS`` — not ``ip netns exec``, which remounts /sys
  and hides the cgroup mounts (dockerd then refuses: "Devices cgroup isn't mounted");
- its own ``data-root``, ``exec-root``, socket, pid file and cgroup parent, all under
  ``<lab.state_dir>/docker/``, written to a ``daemon.json`` that dockerd is started with
  (``--config-file``) and that commands run in the server role see as
  ``/etc/docker/daemon.json`` (the role's view, :mod:`netcheck.lab.view`), as on a real host;
- its bridge and address pools inside 198.18.0.0/15 (198.19.0.0/16); its iptables rules in
  the server namespace's own netfilter.

The host's Docker (if any) and its default socket are never used: every ``docker`` command the
lab runs names the lab's socket in ``DOCKER_HOST``. No registry is reachable, so the one image
is made here: a root filesystem of Debian's ``busybox-static`` (the binary and its applets as
symbolic links) imported with ``docker import``; ``busybox httpd`` serves HTTP and logs each
request, with its headers, to the container's log.

Teardown (:func:`destroy`, called by the lab's own teardown and by ``cleanup_stale``) removes
every container, stops dockerd by its PID (which stops its containerd), ends any process of
the engine still alive by PID, unmounts whatever is mounted under the engine's folders
(/proc/self/mountinfo), removes the image store and the cgroups; the bridge goes with the
namespace. Nothing here runs through a shell.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab import view
from netcheck.lab.docker_engine import (  # noqa: F401 - the constants and _is_static re-exported
    ADDRESS_POOL,
    BRIDGE_IP,
    DOCKER_CLI,
    Engine,
    _is_static,
    _read_json,
    _which,
    _write_json,
    docker_cli,
    docker_problem,
)
from netcheck.lab.topology import NETNS_RUN, Lab, LabError, _pid_alive, _proc_start_time

IMAGE = "netcheck-lab/busybox:1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CONFIG_PATH = "/etc/docker/daemon.json"  # where a host's daemon.json is, and the view shows it
# Applets the image links to busybox: a shell, the web server, and the slides' tools.
APPLETS = ("sh", "httpd", "netstat", "ps", "cat", "echo", "ls", "sleep", "true", "false",
           "wget", "nc", "ip", "ifconfig", "hostname", "env", "mkdir", "kill", "date", "printf")
PAGE = "<html><body><h1>netcheck lab: a container</h1></body></html>\n"
# The web application: busybox httpd runs /cgi-bin/index.cgi for "/" (there is no
# index.html), and the script logs each request in Apache's combined format to its stderr,
# which is the container's log, as the slides' WordPress container does.
INDEX_CGI = r"""#!/bin/sh
a=${REMOTE_ADDR#[}; a=${a%]}; a=${a#::ffff:}
printf '%s - - [%s] "%s %s %s" 200 %s "-" "%s"\n' "$a" "$(date -u '+%d/%b/%Y:%H:%M:%S +0000')" \
  "$REQUEST_METHOD" "$REQUEST_URI" "$SERVER_PROTOCOL" 63 "$HTTP_USER_AGENT" >&2
printf 'Content-Type: text/html\r\n\r\n'
cat /www/page.html
"""
# What every web container of the lab runs (busybox httpd in the foreground, on port 80).
HTTPD = ("httpd", "-f", "-v", "-p", "80", "-h", "/www")


def engine(lab: Lab) -> Engine:
    """The lab's engine, started (and the image imported) on first use."""
    eng = Engine.of(lab)
    if eng.running_pid() is None:
        start(lab)
    return eng


def start(lab: Lab) -> Engine:
    """Start dockerd in the server namespace and import the busybox image; LabError if not."""
    problem = docker_problem()
    if problem:
        raise LabError(problem)
    eng = Engine.of(lab)
    for path in (eng.root, eng.data_root, eng.exec_root, eng.root / "cli"):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = eng.daemon_json()
    _write_json(eng.config, config)
    # Commands of the server role (netcheck server among them) see it where a host has it.
    view.write_file(lab, "server", CONFIG_PATH, json.dumps(config, indent=1) + "\n")
    nsenter, dockerd = _which("nsenter"), _which("dockerd")
    argv = [str(nsenter), f"--net={NETNS_RUN / lab.ns('server')}", "--",
            str(dockerd), "--config-file", str(eng.config)]
    fd = os.open(eng.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o644)
    try:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(eng.root)}
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env,
                                start_new_session=True)
    finally:
        os.close(fd)
    # nsenter execs dockerd in place: the Popen PID is dockerd's own.
    _write_json(eng.state_file, {"dockerd_pid": proc.pid,
                                 "dockerd_start": _proc_start_time(proc.pid),
                                 "namespace": lab.ns("server"), "cgroup_parent":
                                 eng.cgroup_parent()})
    _Keep.procs[proc.pid] = proc  # reaped by whoever stops it
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise LabError(f"dockerd exited with {proc.returncode}:\n{_tail(eng.log_file)}")
        if eng.socket.exists() and docker(eng, "version", "--format", "{{.Server.Version}}",
                                          check=False, timeout=5).returncode == 0:
            break
        if time.monotonic() > deadline:
            raise LabError(f"dockerd not ready after {START_TIMEOUT:g} s:\n{_tail(eng.log_file)}")
        time.sleep(0.1)
    import_image(eng)
    return eng


class _Keep:
    """Popen objects of the engines this process started (so their exit is reaped)."""

    procs: dict[int, subprocess.Popen] = {}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def docker(eng: Engine, *args: str, check: bool = True, timeout: float = 30.0,
           input: Optional[bytes] = None) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` against the lab's engine only (DOCKER_HOST set, never the default)."""
    cli = docker_cli()
    if cli is None:
        raise LabError("the docker CLI is not installed")
    proc = subprocess.run([cli, *args], input=input, capture_output=True, timeout=timeout,
                          env=eng.env(), stdin=None if input is not None else subprocess.DEVNULL)
    out = subprocess.CompletedProcess(proc.args, proc.returncode,
                                      proc.stdout.decode(errors="replace"),
                                      proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise LabError(f"docker {' '.join(args)} -> exit {proc.returncode}: "
                       f"{out.stderr.strip() or out.stdout.strip()}")
    return out


def rootfs_tar() -> bytes:
    """A root file system with /bin/busybox, its applets as links, and a web page in /www."""
    busybox = os.path.realpath(str(_which("busybox")))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "www", "www/cgi-bin", "tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox", recursive=False)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        for name, text, mode in (("www/page.html", PAGE, 0o644),
                                 ("www/cgi-bin/index.cgi", INDEX_CGI, 0o755),
                                 ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n", 0o644),
                                 ("etc/group", "root:x:0:\n", 0o644)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def import_image(eng: Engine) -> None:
    """``docker import`` the busybox root file system as IMAGE (once per engine)."""
    if docker(eng, "image", "inspect", IMAGE, check=False).returncode == 0:
        return
    docker(eng, "import", "--change", "WORKDIR /", "--change", 'CMD ["/bin/sh"]', "-", IMAGE,
           input=rootfs_tar(), timeout=60)


def run(lab: Lab, name: str, command: Sequence[str], *, publish: Sequence[str] = (),
        restart: str = "no", expose: Sequence[str] = (), detach: bool = True) -> str:
    """``docker run -d --name NAME [-p ...] IMAGE COMMAND`` in the lab's engine; its id.

    Containers stop with SIGKILL (busybox as PID 1 ignores SIGTERM: a stop would wait its
    ten seconds for nothing).
    """
    eng = engine(lab)
    args = ["run", "--name", name, "--stop-signal", "KILL", "--restart", restart]
    if detach:
        args.append("-d")
    for p in publish:
        args += ["-p", p]
    for e in expose:
        args += ["--expose", e]
    out = docker(eng, *args, IMAGE, *command, timeout=60)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def inspect(lab_or_engine: Any, name: str) -> dict[str, Any]:
    """``docker inspect NAME`` (the first object), {} when there is none."""
    eng = lab_or_engine if isinstance(lab_or_engine, Engine) else Engine.of(lab_or_engine)
    out = docker(eng, "inspect", name, check=False)
    try:
        data = json.loads(out.stdout)
    except ValueError:
        return {}
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


def wait_state(lab: Lab, name: str, predicate: Any, timeout: float = 15.0,
               what: str = "the expected state") -> dict[str, Any]:
    """Poll ``docker inspect NAME`` until ``predicate(state)`` holds; LabError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        info = inspect(lab, name)
        state = info.get("State") or {}
        if state and predicate(state):
            return info
        if time.monotonic() > deadline:
            raise LabError(f"container {name} did not reach {what}: {json.dumps(state)[:400]}")
        time.sleep(0.1)


def stop_engine(lab_or_dir: Any, timeout: float = STOP_TIMEOUT) -> None:
    """Stop dockerd (SIGTERM by PID, as ``systemctl stop docker`` does); it stops its
    containers and its containerd. The engine's folders stay (the image store, the config)."""
    eng = Engine.of(lab_or_dir)
    pid = eng.running_pid()
    if pid is None:
        return
    _signal_and_wait(pid, _read_json(eng.state_file).get("dockerd_start"), timeout)


def _signal_and_wait(pid: int, start: Optional[int], timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc = _Keep.procs.get(pid)
            if proc is not None and proc.poll() is not None:
                _Keep.procs.pop(pid, None)
                return
            if not _pid_alive(pid, start) or _zombie(pid):
                return
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# -- teardown ------------------------------------------------------------------------------------

def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (this mount namespace's /proc/self/mountinfo)."""
    base = str(path).rstrip("/")
    found: list[str] = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4:
                    point = fields[4].encode().decode("unicode_escape")
                    if point == base or point.startswith(base + "/"):
                        found.append(point)
    except OSError:
        pass
    return found


def _engine_pids(eng: Engine) -> list[int]:
    """Processes of this engine still alive: dockerd, its containerd, the shims — found by the
    engine's own paths in their command lines (they all name the exec-root or data-root)."""
    marks = (str(eng.exec_root), str(eng.data_root), str(eng.config))
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in marks):
            pids.append(int(entry))
    return pids


def _cgroup_dirs(parent: str) -> list[Path]:
    """The cgroup folders of the engine's cgroup parent, in every hierarchy."""
    found: list[Path] = []
    root = Path("/sys/fs/cgroup")
    name = parent.strip("/")
    if not name:
        return found
    candidates = [root / name] + [d / name for d in root.iterdir() if d.is_dir()] \
        if root.is_dir() else []
    for path in candidates:
        if path.is_dir():
            found.append(path)
    return found


def _remove_cgroup(path: Path) -> None:
    """rmdir a cgroup folder, children first (cgroup folders are removed with rmdir only)."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def leftovers(lab_or_dir: Any) -> list[str]:
    """What of the engine still exists: processes, mounts, image store, cgroups (for tests)."""
    eng = Engine.of(lab_or_dir)
    state = _read_json(eng.state_file)
    found = [f"process {pid}" for pid in _engine_pids(eng)]
    found += [f"mount {m}" for m in mounts_under(eng.root)]
    if eng.data_root.exists():
        found.append(f"image store {eng.data_root}")
    parent = state.get("cgroup_parent") or eng.cgroup_parent()
    found += [f"cgroup {p}" for p in _cgroup_dirs(parent)]
    return found


def destroy(state_dir: Path, namespaces: Sequence[str] = ()) -> list[str]:
    """Remove a lab's engine entirely (a no-op without one); the errors, if any.

    Containers are removed through the engine first (``docker rm -f``: their mounts, cgroups
    and network namespaces go with them), then dockerd is stopped by its PID, then whatever
    of the engine is still alive is ended by PID and whatever is still mounted is unmounted.
    """
    eng = Engine(Path(state_dir) / "docker")
    if not eng.root.is_dir():
        return []
    errors: list[str] = []
    state = _read_json(eng.state_file)
    pid = eng.running_pid()
    if pid is not None and eng.socket.exists():
        try:
            ids = docker(eng, "ps", "-aq", check=False, timeout=10).stdout.split()
            if ids:
                docker(eng, "rm", "-f", *ids, check=False, timeout=30)
        except (subprocess.TimeoutExpired, LabError) as exc:
            errors.append(f"docker rm -f: {exc}")
    if pid is not None:
        _signal_and_wait(pid, state.get("dockerd_start"), STOP_TIMEOUT)
    for other in _engine_pids(eng):  # containerd, shims, containers left by a killed dockerd
        start = _proc_start_time(other)
        if start is not None:
            _signal_and_wait(other, start, 3.0)
    for point in sorted(mounts_under(eng.root), key=len, reverse=True):
        umount = _which("umount") or "/usr/bin/umount"
        proc = subprocess.run([umount, "-l", point], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 and point in mounts_under(eng.root):
            errors.append(f"umount {point}: {proc.stderr.strip()}")
    for cgroup in _cgroup_dirs(state.get("cgroup_parent") or eng.cgroup_parent()):
        _remove_cgroup(cgroup)
    if not mounts_under(eng.root):
        shutil.rmtree(eng.root, ignore_errors=True)
    else:
        errors.append(f"{eng.root}: still mounted, not removed")
    return errors
