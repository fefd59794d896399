"""Every hint command of a report pastes: the lab tests that diagnose a scenario call
:func:`assert_commands_paste` on the run they already have.

A command must parse as a shell line (``bash -n``), name only values the host knew (no
``<placeholder>``, ``PEER``, ``NAMESPACE``, ``CERT.pem``, ``/path/to``: only the few values no
host can know are allowed, per problem code), run a program this host has (or say which package
to install, or be meant for another host), end ``openssl s_client`` with ``</dev/null``, and
never renew with certbot what a private CA issued (every lab CA is one).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from typing import Any, Iterator

from netcheck.model import split_comment

PLACEHOLDER = re.compile(r"<[A-Za-z][^<>|]*>|\bPEER\b|\bNAMESPACE\b|\bCERT\.pem\b|/path/to/")
# What no host can know, by the code of the finding whose hint names it.
UNKNOWABLE = {
    "ADDR_NONE": {"<address>", "<prefix>"},  # nothing on the link says which address is free
    "DNS_NO_RESOLVER": {"<your DNS server>"},  # no lease, and no router that answers DNS
}
# Programs of shell syntax rather than files.
BUILTINS = {"cd", "echo", "test", "[", "true", "false", "export", "printf"}


def _commands(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(the finding's code, command) of every hint of the report, the root cause's too."""
    hints = [(c.get("code"), c.get("hint")) for c in doc.get("checks", [])]
    root = doc.get("root_cause") or {}
    hints.append((root.get("code"), root.get("hint")))
    for code, hint in hints:
        for command in (hint or {}).get("commands") or []:
            yield str(code), command


def _programs(line: str) -> list[str]:
    """The program of each stage of a command line (``a | b && c``), not inside $(...)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    programs, start = [], True
    for token in lexer:
        if token in ("|", "||", "&&", ";", "&"):
            start = True
        elif start and "=" not in token.split("/")[0] and not token.startswith("$("):
            programs.append(token.rsplit("/", 1)[-1])
            start = False
    return programs


def _elsewhere(comment: str) -> bool:
    """The comment says the command is for another host (the server, a router)."""
    return comment.startswith("on ") or "on the server" in comment


def command_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with the report's hint commands (empty: they all paste)."""
    problems = []
    for code, command in _commands(doc):
        line, comment = split_comment(command)
        checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append(f"bash -n fails on {command!r}: {checked.stderr.strip()}")
        for found in PLACEHOLDER.findall(line):
            if found not in UNKNOWABLE.get(code, set()):
                problems.append(f"{code}: placeholder {found} in {command!r}")
        if "s_client" in line and "</dev/null" not in line:
            problems.append(f"openssl s_client waits for input: {command!r}")
        if "certbot" in line:
            problems.append(f"certbot for a certificate of a private (lab) CA: {command!r}")
        if line and not _elsewhere(comment) and "not installed here" not in comment:
            for program in _programs(line):
                if program not in BUILTINS and program != "netcheck" and not (
                        shutil.which(program)
                        or shutil.which(program, path="/usr/local/sbin:/usr/sbin:/sbin")):
                    problems.append(f"{program} is not installed here: {command!r}")
    return problems


def assert_commands_paste(run: Any) -> None:
    """Fail with every problem of the run's hint commands (``run``: a NetcheckRun)."""
    problems = command_problems(run.doc or {})
    assert not problems, "\n".join(problems) + "\n" + run.explain()
