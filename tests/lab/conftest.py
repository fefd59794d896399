"""Fixtures for the lab tests: a fresh lab per test, always torn down, and netcheck runs in it.

Lab tests need root and network namespaces. Where they are missing the tests are skipped with
the reason, except under CI (``CI=true``) or ``NETCHECK_REQUIRE_LAB=1``: there they must run,
and an unusable machine is an error.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import pytest

from netcheck.lab.topology import Lab, cleanup_stale, lab_support_problem
from tests.schema import validate_report

HERE = Path(__file__).resolve().parent


def lab_required() -> bool:
    """True where lab tests must run and fail if they cannot (CI, or asked for explicitly)."""
    return (os.environ.get("CI", "").lower() in ("true", "1", "yes")
            or os.environ.get("NETCHECK_REQUIRE_LAB") == "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/lab/ is a lab test (`-m "not lab"` deselects them all)."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session", autouse=True)
def lab_support() -> None:
    """Skip (or, under CI, fail) the whole lab suite when no lab can be built here."""
    problem = lab_support_problem()
    if problem:
        if lab_required():
            pytest.fail(f"lab tests are required here (CI / NETCHECK_REQUIRE_LAB) but cannot "
                        f"run: {problem}", pytrace=False)
        pytest.skip(f"lab tests skipped: {problem} (NETCHECK_REQUIRE_LAB=1 makes this an error)")
    # Labs of test runs that crashed or were killed: only those whose creator is dead.
    cleanup_stale()


@pytest.fixture
def lab_up_turn() -> Iterator[None]:
    """Wait for this test's turn to drive `netcheck lab up/check/down`.

    `lab up` leaves a lab running on purpose, `lab check` grades the newest such lab and `lab
    down` removes them all: with test files running side by side (make test runs pytest -n),
    two such tests would grade or remove each other's lab. A lock file takes them in turn."""
    with open("/run/netcheck-lab-up-tests.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def lab(lab_support: None) -> Iterator[Lab]:
    """A freshly built lab for one test; torn down afterwards whatever the test did."""
    instance = Lab(keep_logs=os.environ.get("NETCHECK_LAB_KEEP_LOGS") == "1")
    instance.build()  # tears itself down if the build fails
    try:
        yield instance
    finally:
        instance.teardown()


def lab_with(scenarios: Iterable[Any]) -> Iterator[Lab]:
    """A fresh lab with these scenarios applied, torn down after: ``yield from`` it in a
    module-scoped fixture when the scenarios only add (hosts, servers, their own rules)."""
    instance = Lab(keep_logs=os.environ.get("NETCHECK_LAB_KEEP_LOGS") == "1")
    instance.build()
    try:
        for scenario in scenarios:
            scenario.apply(instance)
        yield instance
    finally:
        instance.teardown()


@dataclass
class NetcheckRun:
    """What one `netcheck ... --format json` run inside the client namespace produced."""

    rc: int
    doc: Optional[dict[str, Any]]
    stdout: str
    stderr: str
    elapsed: float

    @property
    def verdict(self) -> Optional[str]:
        """The document's verdict, or None if there is no document."""
        return self.doc.get("verdict") if self.doc else None

    @property
    def root_cause(self) -> Optional[dict[str, Any]]:
        """The document's root_cause object (None when ok or no document)."""
        return self.doc.get("root_cause") if self.doc else None

    def check(self, check_id: str) -> Optional[dict[str, Any]]:
        """The result of one check by id, or None if it is not in the report."""
        for result in (self.doc or {}).get("checks", []):
            if result.get("id") == check_id:
                return result
        return None

    def explain(self) -> str:
        """Everything needed to understand a failing assertion."""
        return (f"rc={self.rc} elapsed={self.elapsed:.2f}s\n--- stdout\n{self.stdout}\n"
                f"--- stderr\n{self.stderr}")


def _user_ids(user: str) -> tuple[int, int]:
    if user.isdigit():
        return int(user), int(user)
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def run_netcheck(lab: Lab, *args: str, user: Optional[str] = None,
                 timeout: float = 30, no_net_raw: bool = False, role: str = "client",
                 fmt: str = "json", env: Optional[dict[str, str]] = None) -> NetcheckRun:
    """Run ``python -m netcheck ARGS --format FMT`` in the lab's ``role`` namespace.

    With ``fmt="json"`` stdout must be exactly one valid netcheck/1 document; with
    ``fmt="text"`` the text report is kept as it is (``--no-color``). ``env``: extra
    environment variables for this run.

    user: run unprivileged as this user (name or uid, e.g. "nobody" or "65534") through
    ``setpriv``, to test what netcheck does without root.
    no_net_raw: also drop CAP_NET_RAW from the bounding set, so not even the system
    ``ping`` (a file capability) can send ICMP.
    """
    argv: list[str] = []
    extra = env
    # The machine's proxy settings must never steer lab traffic.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra or {})
    if user is not None:
        uid, gid = _user_ids(user)
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        argv += [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        if no_net_raw:
            argv.append("--bounding-set=-net_raw")
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the unprivileged user cannot write __pycache__
        env.pop("HOME", None)
    fmt_args = ["--no-color"] if fmt == "text" else ["--format", fmt]
    argv += [sys.executable, "-m", "netcheck", *args, *fmt_args]
    start = time.monotonic()
    try:
        proc = lab.exec(role, argv, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"netcheck {' '.join(args)} did not finish within {timeout}s "
                    f"(stderr: {exc.stderr!r})")
    elapsed = time.monotonic() - start
    run = NetcheckRun(proc.returncode, None, proc.stdout, proc.stderr, elapsed)
    if fmt != "json":
        return run
    # The contract: with --format json, stdout is exactly one valid document, always.
    try:
        run.doc = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document\n{run.explain()}")
    validate_report(run.doc)
    return run


@pytest.fixture
def netcheck_in_lab(lab: Lab) -> Callable[..., NetcheckRun]:
    """``run_netcheck`` bound to this test's lab: ``netcheck_in_lab("tcp://...", "-4")``."""

    def run(*args: str, user: Optional[str] = None, timeout: float = 30) -> NetcheckRun:
        return run_netcheck(lab, *args, user=user, timeout=timeout)

    return run
